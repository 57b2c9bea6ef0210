"""``snl-video config check FILE [key=value ...]``: validate a recipe before running it.

Prints the fully resolved configuration (defaults, includes and overrides applied, and what
the weights registry entry implies: model options, block placement, normalisation, as
``# resolved:`` comment lines and in the YAML) — the record ``train`` writes — or every problem found, one per line, with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from ..config import dump_config, load_config
from ..errors import InvalidValueError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="validate a YAML recipe and print the resolved configuration")
    verbs = p.add_subparsers(dest="config_command", metavar="<check>", required=True)
    p_check = verbs.add_parser(
        "check",
        help="validate FILE with overrides; print the resolved config or every error (exit code 2)",
        description="Validate a recipe: print the resolved config, or all problems at once (exit code 2).",
    )
    p_check.add_argument("file", help="YAML recipe, e.g. configs/ucf101/r3d50_snl.yaml")
    p_check.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=0.1 data.split=2")
    p_check.add_argument("--no-data", action="store_true", help="check the recipe and the model only, not data.root")
    p_check.set_defaults(func=run_check)


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
