"""Size and layering figures for the ``snl_video`` package, read from its syntax tree.

Prints four tables the closing notes of a refactoring quote as before/after figures:

1. the largest library modules (physical lines; a module that is mostly literal data,
   such as a table of class names, is marked ``data``);
2. the largest functions and methods (lines from ``def`` to the last line of the body),
   leaving out data tables: functions whose expression nodes are mostly literals;
3. cross-module private-name imports: ``from snl_video.x import _name``, the relative
   spelling of the same, or ``x._name`` on a name bound to another ``snl_video`` module;
4. upward imports against the layer order (a module importing a module of a higher
   layer), eager ones and the lazy ones inside functions marked apart.

Only the standard library is used, and nothing is imported from the package, so the
script runs on any checkout: ``python scripts/code_stats.py [--root .] [--top 15]``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "snl_video"

#: Bottom to top (as the import-linter contract in pyproject.toml). A module may import from
#: its own layer and the layers below it.
LAYERS: tuple[str, ...] = (
    "utilities",
    "inputspec",
    "nonlocal_blocks",
    "weights",
    "models",
    "data",
    "config",
    "engine",
    "commands",
    "cli",
)

#: Top-level modules of the package that are utilities (the bottom layer).
UTILITY_MODULES = frozenset({"fileio", "errors", "progress", "utils", "locking", "version", "deprecation"})

#: Share of literal expression nodes above which a function or module counts as data
#: (a function only from ``DATA_MIN_LINES`` lines on: a two-line ``pass`` is no table).
DATA_SHARE = 0.6
DATA_MIN_LINES = 10


def layer_of(module: str) -> str | None:
    """The layer of a dotted ``snl_video`` module name, or ``None`` for a non-package name."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return "cli"  # the package ``__init__`` is the public API, above everything
    head = parts[1]
    if head in UTILITY_MODULES or head.startswith("errors"):
        return "utilities"
    if head in LAYERS:
        return head
    if head in ("benchmarking", "utilisation"):
        return "engine"  # measurement tooling for scripts, above the blocks it times
    return "utilities" if head in {"_version", "version"} else "engine"


@dataclass(frozen=True)
class Import:
    """One import edge: who imports what (and which name, for ``from`` imports)."""

    source: str
    target: str
    name: str | None
    line: int
    lazy: bool


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of ``path`` under ``root`` (``pkg/__init__.py`` → ``pkg``)."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) or (
        isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict))
    )


def literal_share(node: ast.AST) -> float:
    """Share of the expression nodes under ``node`` that are constants or literal containers."""
    exprs = [n for n in ast.walk(node) if isinstance(n, ast.expr)]
    if not exprs:
        return 0.0
    return sum(_is_literal(n) for n in exprs) / len(exprs)


def node_lines(node: ast.AST) -> int:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return node.end_lineno - first + 1  # type: ignore[attr-defined]


class _Collector(ast.NodeVisitor):
    """Collects functions (with qualified names) and imports of one module."""

    def __init__(self, module: str, is_package: bool, modules: set[str]) -> None:
        self.module = module
        self.is_package = is_package
        self.modules = modules
        self.scope: list[str] = []
        self.func_depth = 0
        self.functions: list[tuple[str, int, int, float]] = []
        self.imports: list[Import] = []
        self.module_aliases: dict[str, str] = {}  # local name → snl_video module
        self.private_attrs: list[tuple[str, str, int]] = []

    # -- scopes ----------------------------------------------------------------------
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        qualname = ".".join(self.scope + [node.name])
        self.functions.append((qualname, node.lineno, node_lines(node), literal_share(node)))
        self.scope.append(node.name)
        self.func_depth += 1
        self.generic_visit(node)
        self.func_depth -= 1
        self.scope.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    # -- imports ---------------------------------------------------------------------
    def _resolve_from(self, node: ast.ImportFrom) -> str | None:
        if node.level == 0:
            return node.module
        base = self.module.split(".")
        if not self.is_package:
            base = base[:-1]
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] != PACKAGE:
                continue
            self.imports.append(Import(self.module, alias.name, None, node.lineno, self.func_depth > 0))
            if alias.asname:
                self.module_aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._resolve_from(node)
        if base is None or base.split(".")[0] != PACKAGE:
            return
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            if candidate in self.modules:  # ``from pkg import submodule``
                self.imports.append(Import(self.module, candidate, None, node.lineno, self.func_depth > 0))
                self.module_aliases[alias.asname or alias.name] = candidate
            else:
                self.imports.append(Import(self.module, base, alias.name, node.lineno, self.func_depth > 0))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if (
            isinstance(node.value, ast.Name)
            and node.value.id in self.module_aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            self.private_attrs.append((self.module_aliases[node.value.id], node.attr, node.lineno))
        self.generic_visit(node)


@dataclass
class ModuleStats:
    name: str
    path: Path
    lines: int
    data: bool
    collector: _Collector


def collect(root: Path, package_dir: Path, extra_dirs: list[Path]) -> tuple[list[ModuleStats], list[ModuleStats]]:
    """Parse the package and the extra trees (tests, scripts); return both module lists."""
    files = sorted(package_dir.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    library = [_parse(f, root, modules) for f in files]
    extra = [_parse(f, root, modules) for d in extra_dirs if d.is_dir() for f in sorted(d.rglob("*.py"))]
    return library, extra


def _parse(path: Path, root: Path, modules: set[str]) -> ModuleStats:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    name = module_name(path, root)
    collector = _Collector(name, path.name == "__init__.py", modules)
    collector.visit(tree)
    lines = len(text.splitlines())
    return ModuleStats(name, path, lines, literal_share(tree) > DATA_SHARE, collector)


def private_imports(stats: list[ModuleStats]) -> list[str]:
    """``source:line → target._name`` for each private name used outside its module."""
    rows = []
    for m in stats:
        for imp in m.collector.imports:
            if imp.name and imp.name.startswith("_") and not imp.name.startswith("__") and imp.target != m.name:
                rows.append(f"{m.name}:{imp.line} → {imp.target}.{imp.name}")
        for target, attr, line in m.collector.private_attrs:
            if target != m.name:
                rows.append(f"{m.name}:{line} → {target}.{attr}")
    return rows


def upward_imports(stats: list[ModuleStats]) -> list[str]:
    """Imports whose target lies in a higher layer than their source."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    rows = []
    for m in stats:
        src = layer_of(m.name)
        for imp in m.collector.imports:
            dst = layer_of(imp.target)
            if src is None or dst is None or rank[dst] <= rank[src]:
                continue
            what = imp.target + (f".{imp.name}" if imp.name else "")
            lazy = " (lazy)" if imp.lazy else ""
            rows.append(f"{m.name}:{imp.line} [{src} → {dst}] {what}{lazy}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--top", type=int, default=15, help="rows in the size tables")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    library, extra = collect(root, root / PACKAGE, [root / "tests", root / "scripts", root / "data_prep"])

    total = sum(m.lines for m in library)
    print(f"library: {len(library)} modules, {total} lines")
    print("\nLargest modules (lines; 'data' = mostly literals):")
    for m in sorted(library, key=lambda m: -m.lines)[: args.top]:
        print(f"  {m.lines:6d}  {m.path.relative_to(root)}{'  data' if m.data else ''}")

    functions = [
        (lines, f"{m.name}.{q}", line, share)
        for m in library
        for q, line, lines, share in m.collector.functions
    ]
    tables = [f for f in functions if f[3] > DATA_SHARE and f[0] >= DATA_MIN_LINES]
    code = [f for f in functions if f not in tables]
    print(f"\nLargest functions (lines; {len(tables)} data tables left out):")
    for lines, name, line, _ in sorted(code, reverse=True)[: args.top]:
        print(f"  {lines:6d}  {name} (line {line})")
    over = [f for f in code if f[0] > 80]
    print(f"  functions over 80 lines: {len(over)}")

    rows = private_imports(library)
    print(f"\nCross-module private-name imports in the library: {len(rows)}")
    for row in rows:
        print(f"  {row}")
    outside = [r for r in private_imports(extra) if f" → {PACKAGE}." in r]
    print(f"  (tests/scripts/data_prep using private {PACKAGE} names: {len(outside)})")

    rows = upward_imports(library)
    eager = [r for r in rows if not r.endswith("(lazy)")]
    print(f"\nUpward imports (order {' → '.join(LAYERS)}): {len(rows)} ({len(eager)} eager)")
    for row in rows:
        print(f"  {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
