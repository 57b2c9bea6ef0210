"""scripts/test_map.py: the mirrored path of each library module, the ``test_<module>_<aspect>.py``
rule and the strays, on a made-up tree; and on this repository, that every library module with
behaviour has its tests and every test module has its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mapper():
    return load_script("test_map")


def _touch(root: Path, rel: str, text: str = "") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_mirrored_paths(mapper):
    mirrored = mapper.mirrored_test
    assert mirrored(Path("snl_video/engine/train.py")) == Path("tests/engine/test_train.py")
    assert mirrored(Path("snl_video/fileio.py")) == Path("tests/test_fileio.py")
    assert mirrored(Path("snl_video/weights/formats/__init__.py")) == Path("tests/weights/test_formats.py")
    assert mirrored(Path("snl_video/__init__.py")) == Path("tests/test_snl_video.py")


def test_rows_aspects_and_strays_on_a_made_up_tree(mapper, tmp_path, monkeypatch):
    monkeypatch.setattr(mapper, "ELSEWHERE", {"snl_video/data/table.py": ("tests/data/test_reader.py", "why")})
    _touch(tmp_path, "snl_video/__init__.py", "from .data.reader import read\n")  # re-exports: no behaviour
    _touch(tmp_path, "snl_video/data/reader.py", "def read():\n    pass\n")
    _touch(tmp_path, "snl_video/data/table.py", "class Table:\n    pass\n")
    _touch(tmp_path, "snl_video/data/writer.py", "def write():\n    pass\n")
    _touch(tmp_path, "snl_video/data/constants.py", "SIZE = 3\n")  # no function or class: not listed
    _touch(tmp_path, "tests/data/test_reader.py")
    _touch(tmp_path, "tests/data/test_reader_errors.py")  # an aspect of reader.py
    _touch(tmp_path, "tests/data/test_reading.py")  # no module reading.py: a stray
    _touch(tmp_path, "tests/e2e/test_whole_run.py")  # a theme folder
    rows = mapper.library_rows(tmp_path)
    assert [(r.module, r.test, r.exists, r.elsewhere) for r in rows] == [
        ("snl_video/data/reader.py", "tests/data/test_reader.py", True, None),
        ("snl_video/data/table.py", "tests/data/test_reader.py", True, "why"),
        ("snl_video/data/writer.py", "tests/data/test_writer.py", False, None),
    ]
    assert mapper.strays(tmp_path, rows) == ["tests/data/test_reading.py"]


def test_this_repository_has_a_test_module_for_every_module_and_no_stray(mapper):
    rows = mapper.library_rows(ROOT)
    missing = [f"{r.module} → {r.test}" for r in rows if not r.exists]
    assert not missing, ("library modules without their test module: add it at the mirrored path, or name "
                         f"where they are tested and why in scripts/mapper.py's ELSEWHERE: {missing}")
    strays = mapper.strays(ROOT, rows)
    assert not strays, ("test modules that mirror no library module: name them test_<module>_<aspect>.py "
                        f"beside the module's tests, or move them to a theme folder (tests/README.md): {strays}")
