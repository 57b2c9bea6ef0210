"""Which library module is tested where: the tests mirror the package.

Every module of ``snl_video`` that defines a function or a class has its tests at the mirrored
path: ``snl_video/engine/train.py`` → ``tests/engine/test_train.py``, ``snl_video/fileio.py`` →
``tests/test_fileio.py``, and a package's ``__init__.py`` → ``test_<package>.py`` beside the
package's test folder (``snl_video/weights/formats/__init__.py`` →
``tests/weights/test_formats.py``; the root ``snl_video/__init__.py`` → ``tests/test_snl_video.py``).
A few modules are tested elsewhere on purpose; :data:`ELSEWHERE` names the file and says why.

Test modules that mirror no library module are cross-cutting themes and live in the folders of
:data:`THEME_FOLDERS` (see ``tests/README.md``); a top-level ``tests/test_*.py`` that mirrors
nothing is listed as a stray.

Prints one row per library module (its mirrored test file and whether it exists), the strays,
and totals; ``--missing`` prints only the modules without tests. Only the standard library is
used and nothing is imported from the package: ``python scripts/test_map.py [--root .]``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "snl_video"

#: Library modules whose behaviour is tested in another file than the mirrored one, and why.
#: Keys and values are paths relative to the repository root.
ELSEWHERE: dict[str, tuple[str, str]] = {}

#: Folders under ``tests/`` for tests that exercise several modules at once, and what each holds.
THEME_FOLDERS: dict[str, str] = {
    "tests/e2e": "whole runs through the command line or the Python API, across several layers",
    "tests/faults": "injected faults (full disk, interrupts, unwritable folders) across every writer",
    "tests/fuzz": "property-based tests (hypothesis) of the parsers that read users' files and strings",
    "tests/project": "the project itself: layers, dependencies, the wheel, the scripts",
}


@dataclass(frozen=True)
class Row:
    """One library module, the test module that mirrors it, and whether that file exists."""

    module: str
    test: str
    exists: bool
    elsewhere: str | None = None


def has_behaviour(path: Path) -> bool:
    """Whether a module defines any function or class (a module of constants or re-exports has none)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in ast.walk(tree))


def mirrored_test(module: Path) -> Path:
    """The test module that mirrors a library module, relative to the repository root.

    ``snl_video/a/b.py`` → ``tests/a/test_b.py``; ``snl_video/a/__init__.py`` → ``tests/test_a.py``;
    ``snl_video/__init__.py`` → ``tests/test_snl_video.py``.
    """
    parts = module.with_suffix("").parts
    assert parts[0] == PACKAGE, module
    if parts[-1] == "__init__":
        parts = parts[:-1]
        if len(parts) == 1:
            return Path("tests", f"test_{PACKAGE}.py")
    return Path("tests", *parts[1:-1], f"test_{parts[-1]}.py")


def library_rows(root: Path) -> list[Row]:
    """One row for each library module with behaviour, in path order."""
    rows = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root)
        if not has_behaviour(path):
            continue
        test = mirrored_test(rel)
        if str(rel) in ELSEWHERE:
            where, why = ELSEWHERE[str(rel)]
            rows.append(Row(str(rel), where, (root / where).is_file(), why))
        else:
            rows.append(Row(str(rel), str(test), (root / test).is_file()))
    return rows


def strays(root: Path, rows: list[Row]) -> list[str]:
    """Test modules that mirror no library module and sit outside the theme folders."""
    mirrored = {row.test for row in rows} | {str(mirrored_test(p.relative_to(root)))
                                             for p in (root / PACKAGE).rglob("*.py")}
    found = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        rel = str(path.relative_to(root))
        if rel in mirrored or any(rel.startswith(folder + "/") for folder in THEME_FOLDERS):
            continue
        found.append(rel)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--missing", action="store_true", help="list only modules without tests")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    rows = library_rows(root)
    for row in rows:
        if args.missing and row.exists:
            continue
        mark = "ok" if row.exists else "--"
        note = f"  ({row.elsewhere})" if row.elsewhere else ""
        print(f"  {mark}  {row.module:48s} {row.test}{note}")
    stray = strays(root, rows)
    print(f"\ntest modules that mirror no library module, outside the theme folders: {len(stray)}")
    for rel in stray:
        print(f"  {rel}")
    have = sum(row.exists for row in rows)
    print(f"\nlibrary modules with behaviour: {len(rows)}; with their mirrored test module: {have}; "
          f"without: {len(rows) - have}; tested elsewhere on purpose: {sum(bool(r.elsewhere) for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
