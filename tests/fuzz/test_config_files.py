"""Fuzzing recipes: YAML files (with ``defaults:`` includes) and ``dotted.key=value`` overrides.

Written against the public ``snl_video.config`` functions (``load_config``,
``apply_overrides``, ``config_to_dict``) so they hold however the module is split. Each
property: loading gives a validated config or the project's one-line error, never another
exception. Overrides aim at the real keys of a shipped recipe (so they pass the key check and
reach the value checks) with values of every YAML kind.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from snl_video.config import config_to_dict, load_config

from .errors import only_project_errors

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "ucf101" / "r3d50_snl_cayley.yaml"


def _dotted_keys(mapping: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        keys.append(path)
        if isinstance(value, dict):
            keys += _dotted_keys(value, path + ".")
    return keys


KEYS = sorted(_dotted_keys(config_to_dict(load_config(RECIPE))))

yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["~", "null", "yes", "0x1F", "1e-4", ".inf", "-.nan", "[", "{a: 1", "!!python/object:os.system",
                     "&a [*a]", "'unterminated", "2024-01-01", "r3d50", "snl", "cayley", "layer3", "[1, 2, 3]",
                     "{layer3: [0, 9]}", "{kind: nl}", "cpu", "cuda:7", "-1", "0", "1e400"]),
)
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)


@st.composite
def overrides(draw) -> str:
    key = draw(st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS).map(lambda k: k + ".x"),
                         st.text(max_size=10)))
    value = draw(st.one_of(yaml_scalars.map(lambda v: v if isinstance(v, str) else yaml.safe_dump(v).strip()
                                            .removesuffix("...").strip()),
                           yaml_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())))
    return draw(st.sampled_from([f"{key}={value}", f"{key}= {value}", key, f"={value}", f"{key}=={value}"]))


@given(items=st.lists(overrides(), max_size=4))
def test_overrides_on_a_shipped_recipe(items):
    with only_project_errors():
        load_config(RECIPE, items)


@st.composite
def recipe_files(draw) -> str | bytes:
    base = config_to_dict(load_config(RECIPE))
    kind = draw(st.sampled_from(["mutated", "mutated", "random", "text", "bytes"]))
    if kind == "mutated":  # the real recipe with a few entries replaced, removed or added
        for _ in range(draw(st.integers(1, 4))):
            path = draw(st.sampled_from(KEYS)).split(".")
            node = base
            for part in path[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            action = draw(st.sampled_from(["set", "delete", "add"]))
            if action == "set":
                node[path[-1]] = draw(yaml_values)
            elif action == "delete":
                node.pop(path[-1], None)
            else:
                node[draw(st.text(max_size=8))] = draw(yaml_values)
        return yaml.safe_dump(base, allow_unicode=True)
    if kind == "random":
        return yaml.safe_dump(draw(yaml_values), allow_unicode=True)
    if kind == "text":
        return draw(st.one_of(st.text(max_size=80), st.sampled_from(
            ["defaults: base.yaml\n", "defaults: [missing.yaml]\n", "defaults: recipe.yaml\n", "base: 3\n",
             "defaults: ../\n", "model: !!python/name:os.system\n", "a: &x [*x]\n", "\t- bad\n", ":\n"])))
    return draw(st.binary(max_size=60))


@given(content=recipe_files(), items=st.lists(overrides(), max_size=2))
def test_recipe_files(content, items):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        (Path(tmp) / "base.yaml").write_text("model: {name: r3d18}\n", encoding="utf-8")
        with only_project_errors():
            load_config(path, items)
