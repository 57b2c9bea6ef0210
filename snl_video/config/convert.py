"""Raw mapping (as read from YAML) → typed :class:`~.schema.ExperimentConfig`, and back.

:func:`config_from_dict` walks the schema's dataclasses and their type hints, converting
each value to its declared type (``Literal`` choices, unions, tuples, mappings) and
collecting every problem (unknown keys with the closest valid name, wrong types, failed
range checks) into one :class:`~.errors.ConfigError`. It coerces only where nothing is
lost (int → float, list → tuple). :func:`config_to_dict` is the inverse: plain data.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Mapping

from .errors import ConfigError, ErrorList, suggest
from .schema import SHORTHAND_FIELD, ExperimentConfig

__all__ = ["MISSING", "build_section", "config_from_dict", "config_to_dict", "convert_value", "describe_value",
           "plain_data", "type_name"]

#: What a conversion returns after recording an error.
MISSING = object()


def type_name(tp: Any) -> str:
    """How a type reads in an error message (``one of 'a', 'b'``, ``a list``, ...)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))




def describe_value(value: Any) -> str:
    """A value as an error message shows it: its type and repr, or ``null``."""
    return f"{type(value).__name__} {value!r}" if value is not None else "null"


def convert_value(value: Any, tp: Any, key: str, errors: ErrorList) -> Any:
    """``value`` as type ``tp``, or ``MISSING`` after recording an error. Coerces only
    where nothing is lost: int → float, list → tuple."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a section class (never an instance here)
        return build_section(tp, value, key, errors)
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        valid = ", ".join(repr(a) for a in args)
        errors.add(key, f"invalid choice {value!r}; valid choices: {valid}{suggest(value, [str(a) for a in args])}")
        return MISSING
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return convert_value(value, members[0], key, errors)
        for member in members:  # first member that accepts the value without an error
            trial = ErrorList()
            converted = convert_value(value, member, key, trial)
            if not trial.items:
                return converted
        errors.add(key, f"expected {type_name(tp)}, got {describe_value(value)}")
        return MISSING
    if tp is Any:
        return value
    if tp is bool:
        if type(value) is bool:
            return value
        errors.add(key, f"expected true or false, got {describe_value(value)}")
        return MISSING
    if tp is int:
        if type(value) is int:
            return value
        errors.add(key, f"expected an integer, got {describe_value(value)}")
        return MISSING
    if tp is float:
        if type(value) in (int, float):
            return float(value)
        errors.add(key, f"expected a number, got {describe_value(value)}")
        return MISSING
    if tp is str:
        if isinstance(value, str):
            return value
        errors.add(key, f"expected a string, got {describe_value(value)}")
        return MISSING
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            errors.add(key, f"expected a list, got {describe_value(value)}")
            return MISSING
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        else:
            if len(value) != len(args):
                errors.add(key, f"expected a list of {len(args)} values, got {len(value)}: {list(value)!r}")
                return MISSING
            item_types = list(args)
        items = [convert_value(v, t, f"{key}[{i}]", errors) for i, (v, t) in enumerate(zip(value, item_types))]
        return MISSING if any(i is MISSING for i in items) else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            errors.add(key, f"expected a mapping, got {describe_value(value)}")
            return MISSING
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                errors.add(key, f"keys must be strings, got {describe_value(k)}")
                return MISSING
            converted = convert_value(v, args[1], f"{key}.{k}", errors)
            if converted is MISSING:
                return MISSING
            out[k] = converted
        return out
    raise TypeError(f"internal: no converter for {tp!r} at {key}")  # a schema bug, not a user error



def build_section(cls: type, value: Any, prefix: str, errors: ErrorList) -> Any:
    """The dataclass ``cls`` from the mapping ``value`` (section ``prefix``), or :data:`MISSING`."""
    if prefix in SHORTHAND_FIELD and isinstance(value, str):
        value = {SHORTHAND_FIELD[prefix]: value}
    if not isinstance(value, dict):
        errors.add(prefix, f"expected a section (mapping) for {cls.__name__}, got {describe_value(value)}")
        return MISSING
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in value:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            errors.add(where, f"unknown key{suggest(key, names)} (valid keys: {', '.join(names)})")
    kwargs: dict[str, Any] = {}
    failed: set[str] = set()
    for f in dataclasses.fields(cls):
        name = f.name
        key = f"{prefix}.{name}" if prefix else name
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.add(key, "is required")
                failed.add(key)
            continue
        before = len(errors.items)
        converted = convert_value(value[name], hints[name], key, errors)
        if converted is MISSING or len(errors.items) > before:
            failed.add(key)
        else:
            kwargs[name] = converted
    # Range checks run even when some fields failed (those keep their defaults), so every
    # problem of the section is reported; a check about a failed field would only repeat it.
    try:
        obj = cls(**kwargs)
    except TypeError:  # a required field failed: nothing to range-check without it
        return MISSING
    checks = ErrorList()
    obj.check(checks, prefix)
    errors.items += [(k, m) for k, m in checks.items if not any(k == f or k.startswith(f + ".") for f in failed)]
    return MISSING if failed else obj


def config_from_dict(data: Mapping[str, Any], *, source: str | None = None) -> ExperimentConfig:
    """Validate a raw mapping (as read from YAML) into an :class:`ExperimentConfig`.

    Raises:
        ConfigError: listing every problem found.
    """
    errors = ErrorList()
    if not isinstance(data, Mapping):
        raise ConfigError([("", f"the top level must be a mapping of sections, got {describe_value(data)}")], source=source)
    cfg = build_section(ExperimentConfig, dict(data), "", errors)
    if errors.items or cfg is MISSING:
        raise ConfigError(errors.items or [("", "invalid configuration")], source=source)
    return cfg



def plain_data(value: Any) -> Any:
    """Dataclasses, tuples and dicts as plain dicts, lists and scalars (YAML/JSON-able)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain_data(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    return value


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The fully resolved config as plain YAML/JSON-able data (lists, dicts, scalars)."""
    return plain_data(cfg)
