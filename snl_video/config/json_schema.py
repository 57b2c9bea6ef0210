"""The recipe's JSON Schema, generated from the one config schema (:mod:`.schema`).

:func:`recipe_json_schema` walks the same dataclasses and type hints that
:func:`~.convert.config_from_dict` converts with, so the two cannot drift apart: each key gets
its type, its choices (a ``Literal`` becomes an ``enum``), its default and, where the schema
documents the field with a ``#:`` comment, that comment as its ``description`` (a section's
description is its class docstring). Editors read the committed copy,
``snl_video/config/recipe.schema.json`` (the first line of each recipe in ``configs/`` names
it for the YAML language server), which ``snl-video config schema --output-file`` rewrites and
a test keeps equal to this function's output.

How the schema treats recipes: a recipe file may be *partial* — it can include a base recipe
(``defaults:``/``base:``) and override a few keys of a section — so no key is ``required``
(``pretrained.source`` included: a base file may give it). Every object is closed
(``additionalProperties: false``), so an unknown key is flagged as you type, as the loader
refuses it. The schema checks shape only (keys, types, choices); ranges (``lr > 0``), the
non-local kind and its options, model names, dataset splits and files on disk stay the
loader's job (``snl-video config check``), as they depend on registries and the disk.
One known difference in shape: JSON Schema counts ``10.0`` as an ``integer`` (JSON has one
number type), where the loader wants YAML's ``10``; the loader's message says so.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
import types
import typing
from typing import Any, Literal

from .convert import plain_data
from .schema import INCLUDE_KEYS, SHORTHAND_FIELD, ExperimentConfig

__all__ = ["SCHEMA_DIALECT", "SCHEMA_FILE_NAME", "field_descriptions", "recipe_json_schema", "recipe_json_schema_text"]

#: The JSON Schema dialect the generated schema declares (``prefixItems`` needs 2020-12).
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: The committed copy's file name, beside this module.
SCHEMA_FILE_NAME = "recipe.schema.json"

_FIELD_LINE = re.compile(r"^\s*(\w+)\s*:")


@functools.cache
def field_descriptions(cls: type) -> dict[str, str]:
    """The ``#:`` comments written just above each field of the dataclass ``cls``, joined into one line."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source (e.g. a frozen build): descriptions are optional
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD_LINE.match(line)
        if match and match.group(1) in names and pending:
            out[match.group(1)] = " ".join(pending)
        pending = []
    return out


def _type_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of a value the loader converts to type ``tp`` (see :func:`~.convert.convert_value`)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a section class (never an instance here)
        return _section_schema(tp)
    if origin is Literal:
        kinds = {type(a) for a in args}
        schema: dict[str, Any] = {"enum": list(args)}
        if kinds == {int}:  # the loader refuses 3.0 for a choice of 3, and JSON Schema's enum would not
            schema["type"] = "integer"
        return schema
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [{"type": "null"} if a is type(None) else _type_schema(a) for a in args]}
    if tp is Any:
        return {}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0])}
        return {"type": "array", "prefixItems": [_type_schema(a) for a in args], "items": False,
                "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    raise TypeError(f"internal: no JSON Schema for {tp!r}")  # a schema type the loader does not know either


def _section_schema(cls: type) -> dict[str, Any]:
    """A closed object with one property per field of the dataclass ``cls``; nothing required."""
    hints = typing.get_type_hints(cls)
    descriptions = field_descriptions(cls)
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        prop = _type_schema(hints[f.name])
        if f.name in descriptions:  # a section keeps its class docstring after the field's comment
            text = "\n\n".join(t for t in (descriptions[f.name], prop.pop("description", None)) if t)
            prop = {"description": text, **prop}
        if f.default is not dataclasses.MISSING:
            prop["default"] = plain_data(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
            if not dataclasses.is_dataclass(default):  # a section's default is its fields' defaults
                prop["default"] = plain_data(default)
        properties[f.name] = prop
    schema: dict[str, Any] = {"type": "object", "title": cls.__name__}
    if cls.__doc__:
        schema["description"] = inspect.cleandoc(cls.__doc__)
    schema["properties"] = properties
    schema["additionalProperties"] = False
    return schema


def recipe_json_schema() -> dict[str, Any]:
    """The JSON Schema of a recipe file (a YAML mapping), as plain data.

    Besides :class:`~.schema.ExperimentConfig`'s sections it allows the include keys
    (``defaults``/``base``: a file or a list of files) and the shorthands of
    :data:`~.schema.SHORTHAND_FIELD` (``nonlocal_blocks: snl``, ``pretrained: NAME_OR_PATH``).
    """
    schema = _section_schema(ExperimentConfig)
    properties: dict[str, Any] = schema["properties"]
    for section, field_name in SHORTHAND_FIELD.items():
        shorthand = {"type": "string", "description": f"shorthand for {{{field_name}: ...}}"}
        members = properties[section]["anyOf"]
        properties[section]["anyOf"] = [shorthand, *members]
    files = {"type": "string"}
    for key in INCLUDE_KEYS:
        properties[key] = {
            "description": "base recipe(s) to include, relative to this file; this file's keys override theirs",
            "anyOf": [files, {"type": "array", "items": files}],
        }
    return {
        "$schema": SCHEMA_DIALECT,
        **{k: v for k, v in schema.items() if k != "title"},
        "title": "snl_video recipe",
    }


def recipe_json_schema_text() -> str:
    """:func:`recipe_json_schema` as the text of the committed schema file (2-space indent, final newline)."""
    return json.dumps(recipe_json_schema(), indent=2, ensure_ascii=False) + "\n"
