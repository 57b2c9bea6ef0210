"""YAML files of a recipe: reading with ``defaults:`` includes, dotted overrides, writing.

:func:`load_config` is the one way from a recipe file to a validated config: it reads the
YAML (which may include base files through ``defaults:``), applies ``key=value`` overrides
from the command line, and validates the result (:func:`~.convert.config_from_dict`),
reporting the overrides' problems together with the file's. Paths in a config are taken
relative to the working directory, as on the command line; only ``defaults:`` includes
are relative to the including file. :func:`save_config` writes the resolved config.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..fileio import atomic_write_text
from .convert import config_from_dict, config_to_dict
from .errors import ConfigError
from .recipes import resolve_recipe_path
from .schema import INCLUDE_KEYS, SHORTHAND_FIELD, ExperimentConfig
from ..errors import MissingFileError

logger = logging.getLogger(__name__)

__all__ = ["YamlLoader", "apply_overrides", "config_with_overrides", "dump_config", "load_config",
           "load_yaml_with_includes", "override_errors", "parse_yaml", "save_config"]


class YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-4`` as a float.

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-4``); ``weight_decay: 1e-4``
    would otherwise arrive as the *string* ``'1e-4'``.
    """


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
YamlLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in list(YamlLoader.yaml_implicit_resolvers):
    YamlLoader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in YamlLoader.yaml_implicit_resolvers[_first] if tag != "tag:yaml.org,2002:float"
    ]
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))



def parse_yaml(text: str, *, source: str) -> Any:
    """Parse YAML text with :class:`YamlLoader`; a syntax error is a :class:`ConfigError` naming ``source``."""
    try:
        return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - YamlLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError([("", f"not valid YAML: {exc}")], source=source) from exc


def load_yaml_with_includes(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; a top-level ``defaults:`` (or ``base:``) names one file or a
    list of files, relative to this one, that are read first (in order) and deep-merged
    under it. A value in the including file replaces the base's, except that mappings merge.
    """
    return _load_yaml(Path(path), ())


def _load_yaml(path: Path, _seen: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise ConfigError([("defaults", f"include cycle: {chain}")], source=str(path))
    if not path.is_file():
        raise MissingFileError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([("", f"not UTF-8 text ({exc}); save the recipe as UTF-8")], source=str(path)) from None
    data = parse_yaml(text, source=str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", f"the top level must be a mapping of sections, got {type(data).__name__}")], source=str(path))
    merged: dict[str, Any] = {}
    for key in INCLUDE_KEYS:
        if key not in data:
            continue
        includes = data.pop(key)
        includes = [includes] if isinstance(includes, str) else includes
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            raise ConfigError([(key, f"must be a file name or a list of file names, got {includes!r}")], source=str(path))
        for include in includes:
            base = _load_yaml(path.parent / include, (*_seen, resolved))
            merged = _deep_merge(merged, base)
    return _deep_merge(merged, data)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``; mappings merge key by key, a shorthand string meets its section."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        elif isinstance(value, Mapping) and isinstance(out.get(key), str) and key in SHORTHAND_FIELD:
            out[key] = _deep_merge({SHORTHAND_FIELD[key]: out[key]}, value)
        else:
            out[key] = value
    return out


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to a raw config mapping.

    Returns the new mapping and the malformed overrides as ``(key, message)`` pairs (the
    caller reports them together with the validation errors). Unknown keys are not an
    error here: validation reports them, with suggestions, like keys in the file.
    """
    out = copy.deepcopy(dict(data))
    problems: list[tuple[str, str]] = []
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append((key or override, f"override {override!r} is not of the form dotted.key=value"))
            continue
        try:
            value = yaml.load(raw, Loader=YamlLoader) if raw.strip() else None  # noqa: S506
        except yaml.YAMLError as exc:
            problems.append((key, f"value {raw!r} is not valid YAML: {exc}"))
            continue
        parts = key.split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str) and depth == 0 and part in SHORTHAND_FIELD:
                child = node[part] = {SHORTHAND_FIELD[part]: child}
            elif not isinstance(child, dict):
                problems.append((key, f"cannot set {key!r}: {'.'.join(parts[: depth + 1])!r} is {child!r}, not a section"))
                break
            node = child
        else:
            node[parts[-1]] = value
    return out, problems



def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML recipe (with ``defaults:`` includes), apply ``key=value`` overrides, validate.

    Args:
        path: the YAML file, or the name of a shipped recipe (``ucf101/r3d50_snl``: a value that is
            not a file and has no ``.yaml`` suffix; :func:`~.recipes.resolve_recipe_path`).
        overrides: ``dotted.key=value`` strings, e.g. ``optim.lr=0.1``,
            ``nonlocal_blocks.kind=nl``, ``data.split=2``; values are parsed as YAML
            (``[1, 2]`` is a list, ``null`` is None).

    Raises:
        ConfigError: every problem in the file and the overrides, at once.
        FileNotFoundError: the file (or an included file) does not exist, and no shipped recipe
            has that name.
    """
    path = resolve_recipe_path(path)
    cfg = config_with_overrides(load_yaml_with_includes(path), overrides, source=str(path))
    logger.debug("loaded config %s with %d override(s)", path, len(overrides))
    return cfg


def config_with_overrides(raw: Mapping[str, Any], overrides: Sequence[str], *, source: str) -> ExperimentConfig:
    """Apply ``overrides`` to the raw recipe ``raw`` (read from ``source``) and validate.

    Raises:
        ConfigError: every problem; those the overrides made are said to be in the
            command-line overrides, not in ``source`` (a problem the recipe has without the
            overrides stays the file's).
    """
    merged, problems = apply_overrides(dict(raw), overrides)
    try:
        cfg = config_from_dict(merged, source=source)
    except ConfigError as exc:
        errors = problems + exc.errors
    else:
        if not problems:
            return cfg
        errors = problems
    raise ConfigError(errors, source=source, command_line=override_errors(raw, errors, problems) if overrides else ())


def override_errors(raw: Mapping[str, Any], errors: Sequence[tuple[str, str]],
                    malformed: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The ``errors`` (of ``raw`` with overrides applied) that the overrides made: the malformed
    overrides, and every error the recipe ``raw`` does not have on its own."""
    try:
        config_from_dict(raw)
        own: list[tuple[str, str]] = []
    except ConfigError as exc:
        own = exc.errors
    return [e for e in errors if e in malformed or e not in own]



class YamlDumper(yaml.SafeDumper):
    """Keeps the schema's key order and writes ``null`` for None."""


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML text."""
    return yaml.dump(config_to_dict(cfg), Dumper=YamlDumper, sort_keys=False, default_flow_style=None, width=100)


def save_config(cfg: ExperimentConfig, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config to ``path`` atomically (temporary name, then ``os.replace``),
    so a run directory always records the exact config it ran with."""
    text = "# Resolved configuration (defaults, includes and overrides applied); load it with load_config.\n"
    text += dump_config(cfg)
    return atomic_write_text(path, text)
