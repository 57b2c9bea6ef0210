"""scripts/code_stats.py finds private-name imports and upward imports in a made-up package tree."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ..helpers import load_script


@pytest.fixture(scope="module")
def code_stats():
    return load_script("code_stats")


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_private_and_upward_imports_are_found(code_stats, tmp_path):
    for package in ("snl_video", "snl_video/data", "snl_video/engine", "snl_video/models"):
        _write(tmp_path, f"{package}/__init__.py", "")
    _write(tmp_path, "snl_video/engine/progress.py", "def progress(x):\n    return x\n")
    _write(tmp_path, "snl_video/models/table.py", "NAMES = {'a': 1, 'b': 2, 'c': 3}\n")
    _write(tmp_path, "snl_video/data/reader.py", """\
        from ..engine.progress import progress
        from ..models import table
        from . import helpers


        def read():
            from ..engine import progress as lazy  # noqa: F401
            return helpers._secret, table._hidden
        """)
    _write(tmp_path, "snl_video/data/helpers.py", "_secret = 1\n")
    library, _ = code_stats.collect(tmp_path, tmp_path / "snl_video", [])
    private = code_stats.private_imports(library)
    assert sorted(private) == ["snl_video.data.reader:8 → snl_video.data.helpers._secret",
                               "snl_video.data.reader:8 → snl_video.models.table._hidden"]
    upward = code_stats.upward_imports(library)
    assert upward == ["snl_video.data.reader:1 [data → engine] snl_video.engine.progress.progress",
                      "snl_video.data.reader:7 [data → engine] snl_video.engine.progress (lazy)"]


def test_layers_and_function_sizes(code_stats, tmp_path):
    assert code_stats.layer_of("snl_video.fileio") == "utilities"
    assert code_stats.layer_of("snl_video.config.schema") == "config"
    assert code_stats.layer_of("snl_video") == "cli"
    assert code_stats.layer_of("numpy") is None
    _write(tmp_path, "snl_video/__init__.py", "")
    body = "\n".join(f"    x{i} = {i} + y" for i in range(5))
    _write(tmp_path, "snl_video/big.py", f"def f(y):\n{body}\n    return y\n")
    library, _ = code_stats.collect(tmp_path, tmp_path / "snl_video", [])
    (module,) = [m for m in library if m.name == "snl_video.big"]
    assert [(q, n) for q, _, n, _ in module.collector.functions] == [("f", 7)]
