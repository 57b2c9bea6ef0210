"""``snl-video config check FILE [key=value ...]``: validate a recipe before running it.

Prints the fully resolved configuration (defaults, includes and overrides applied, and what
the weights registry entry implies: model options, block placement, normalisation, as
``# resolved:`` comment lines and in the YAML) — the record ``train`` writes — or every problem found, one per line, with exit code 2.

``snl-video config list``: the recipes and study specs shipped in the package
(``snl_video/configs/``), by name, with what each is; ``snl-video config show NAME``: one's text,
to read or to copy as the start of a recipe of one's own. ``--config NAME`` takes the same names.

``snl-video config schema [--output-file FILE]``: print (or write) the recipe's JSON Schema,
generated from the config schema (:mod:`snl_video.config.json_schema`); editors read the
committed copy ``snl_video/config/recipe.schema.json``, which this rewrites:
``snl-video config schema --output-file snl_video/config/recipe.schema.json``.
"""

from __future__ import annotations

import argparse
import sys

from ..config import dump_config, find_recipe, list_recipes, load_config
from ..errors import InvalidValueError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="validate a recipe, list / show the shipped recipes, print the schema")
    verbs = p.add_subparsers(dest="config_command", metavar="<check|list|show|schema>", required=True)
    p_check = verbs.add_parser(
        "check",
        help="validate FILE with overrides; print the resolved config or every error (exit code 2)",
        description="Validate a recipe: print the resolved config, or all problems at once (exit code 2).",
    )
    p_check.add_argument("file", help="YAML recipe (e.g. my_recipe.yaml) or a shipped recipe's name (e.g. ucf101/r3d50_snl)")
    p_check.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=0.1 data.split=2")
    p_check.add_argument("--no-data", action="store_true", help="check the recipe and the model only, not data.root")
    p_check.set_defaults(func=run_check)
    p_list = verbs.add_parser(
        "list",
        help="the recipes and study specs shipped in the package: name, kind, description",
        description="List the shipped recipes (--config NAME) and study specs (snl-video study NAME).",
    )
    p_list.set_defaults(func=run_list)
    p_show = verbs.add_parser(
        "show",
        help="print a shipped recipe's YAML (e.g. to start a recipe of your own from it)",
        description="Print the text of a shipped recipe or study spec, named as `config list` names it.",
    )
    p_show.add_argument("name", help="a shipped recipe's name, e.g. ucf101/r3d50_snl (see `snl-video config list`)")
    p_show.set_defaults(func=run_show)
    p_schema = verbs.add_parser(
        "schema",
        help="print the recipe's JSON Schema (keys, types, choices, defaults, descriptions)",
        description="Print the JSON Schema of a recipe file, generated from the config schema; "
                    "recipes name the committed copy on their first line (# yaml-language-server: $schema=...).",
    )
    p_schema.add_argument("--output-file", metavar="FILE", help="write the schema to FILE (atomically) instead of printing it")
    p_schema.set_defaults(func=run_schema)


def run_check(args: argparse.Namespace) -> int:
    from ..engine.builders import resolve_recipe
    from ..engine.preflight import preflight

    try:
        cfg = load_config(args.file, args.overrides)
        # the registry and the data on disk too (a data.root absent here is only a warning:
        # recipes are often checked on another machine than the one that runs them)
        preflight(cfg, data=not args.no_data, missing_root_is_error=False)
        resolved = resolve_recipe(cfg)
    except InvalidValueError as exc:  # a ConfigError, or a model option the registry weights contradict
        print(f"snl-video config check: {exc}", file=sys.stderr)
        return 2
    # What train records: the recipe with what the weights entry implies written out (YAML
    # comments say what was filled in, so the printed file is still a valid recipe).
    lines = [f"# resolved: {line}\n" for line in resolved.describe()]
    sys.stdout.write("".join(lines) + dump_config(resolved.config))
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print one line per shipped recipe: its name, whether it is a recipe or a study spec, its description."""
    recipes = list_recipes()
    width = max(len(info.name) for info in recipes)
    for info in recipes:
        print(f"{info.name:<{width}}  {info.kind:<6}  {info.description}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print a shipped recipe's file as it is (its includes are named relative to it: see its folder)."""
    path = find_recipe(args.name)
    sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


def run_schema(args: argparse.Namespace) -> int:
    """Print the recipe's JSON Schema, or write it to ``--output-file``."""
    from ..config.json_schema import recipe_json_schema_text
    from ..fileio import atomic_write

    text = recipe_json_schema_text()
    if args.output_file is None:
        sys.stdout.write(text)
    else:
        atomic_write(args.output_file, lambda f: f.write(text.encode("utf-8")))
        print(f"wrote {args.output_file}", file=sys.stderr)
    return 0
