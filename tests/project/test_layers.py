"""The package's layers hold: import-linter's contracts (``[tool.importlinter]`` in pyproject.toml)
are kept, no module imports another module's private name, and nothing imports the package
root (its ``__init__`` is the public facade, above every layer).

The tests and scripts keep to the public interface too: no private ``snl_video`` name is
imported, read or replaced there (a fault injection replaces a public seam, such as
``snl_video.fileio.open_for_writing``), and no test module imports another test module
(shared code lives in ``tests/helpers.py``, the reference modules and the conftest fixtures)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "snl_video"
#: Trees that use the package from outside: they may use only its public names.
OUTSIDE = ("tests", "scripts", "data_prep")

#: Private names still imported across modules, each with the branch whose merge removes it.
#: Add nothing here: make the name public (documented, tested) or move it.
PRIVATE_IMPORT_ALLOWLIST: dict[tuple[str, str, str], str] = {
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_imports(path: Path) -> list[tuple[str, str, int]]:
    """``(target module, imported name, line)`` for every ``from <snl_video module> import name`` in
    ``path`` (function-local imports included); ``import snl_video.x`` gives an empty name."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "snl_video" or target.startswith("snl_video."):
                found += [(target, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names
                      if alias.name == "snl_video" or alias.name.startswith("snl_video.")]
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def all_project_imports() -> list[tuple[str, str, str, int]]:
    return [(module_name(path), target, name, line)
            for path in sorted(PACKAGE.rglob("*.py")) for target, name, line in project_imports(path)]


def test_the_import_scanner_sees_relative_and_local_imports(tmp_path, monkeypatch):
    # the check below is only as good as this scanner: a private name imported relatively,
    # inside a function, and a private module, are all found
    fake = tmp_path / "snl_video" / "data"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("def f():\n    from ..engine.inference import _read\n"
                               "from .ucf101 import public, _lines\nimport snl_video.models._hidden\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = project_imports(fake / "x.py")
    assert ("snl_video.engine.inference", "_read", 2) in found
    assert ("snl_video.data.ucf101", "_lines", 3) in found
    assert ("snl_video.models._hidden", "", 4) in found


def test_no_module_imports_another_modules_private_name():
    found = set()
    for importer, target, name, line in all_project_imports():
        private = is_private(name) or any(is_private(part) for part in target.split("."))
        if private and target != importer:
            found.add((importer, target, name))
            if (importer, target, name) not in PRIVATE_IMPORT_ALLOWLIST:
                pytest.fail(f"{importer} (line {line}) imports the private {target}.{name}: make it public "
                            "(documented, tested) or move it into the module that uses it")
    stale = set(PRIVATE_IMPORT_ALLOWLIST) - found
    assert not stale, f"allowlisted private imports that no longer exist, delete them: {sorted(stale)}"


def test_nothing_inside_the_package_imports_its_root():
    offenders = [f"{importer}:{line} imports snl_video.{name or ''}"
                 for importer, target, name, line in all_project_imports()
                 if target == "snl_video" and importer != "snl_video"]
    assert not offenders, ("the package root is the public facade above every layer; import what you need "
                           f"from its module (e.g. snl_video.version): {offenders}")


def test_import_linter_contracts_are_kept():
    pytest.importorskip("importlinter")
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _project_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module (or package) of snl_video, as opposed to a name in one."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def private_uses(path: Path) -> list[str]:
    """``line: what`` for each private snl_video name that a file outside the package uses:
    ``from snl_video.x import _name``, ``x._name`` on a name bound to an snl_video module, and
    ``monkeypatch.setattr(x, "_name", ...)`` (also ``setitem``/``delattr`` and the dotted-string
    form ``setattr("snl_video.x._name", ...)``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: dict[str, str] = {}  # local name -> snl_video module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "snl_video":
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if is_private(alias.name) or any(is_private(part) for part in node.module.split(".")):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                elif _project_module(target):
                    modules[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "snl_video":
                    if any(is_private(part) for part in alias.name.split(".")):
                        found.append(f"{node.lineno}: import {alias.name}")
                    modules[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or "snl_video"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            if isinstance(node.value, ast.Name) and node.value.id in modules:
                found.append(f"{node.lineno}: {modules[node.value.id]}.{node.attr}")
            elif _dotted(node.value).split(".")[0] == "snl_video":  # snl_video.x._name spelled out
                found.append(f"{node.lineno}: {_dotted(node.value)}.{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("setattr", "delattr", "setitem", "delitem") and node.args):
            first, rest = node.args[0], node.args[1:]
            if (isinstance(first, ast.Name) and first.id in modules and rest and isinstance(rest[0], ast.Constant)
                    and isinstance(rest[0].value, str) and is_private(rest[0].value)):
                found.append(f"{node.lineno}: {node.func.attr} {modules[first.id]}.{rest[0].value}")
            elif (isinstance(first, ast.Constant) and isinstance(first.value, str)
                  and first.value.split(".")[0] == "snl_video"
                  and any(is_private(part) for part in first.value.split("."))):
                found.append(f"{node.lineno}: {node.func.attr} {first.value}")
    return sorted(set(found), key=lambda row: int(row.split(":")[0]))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def test_the_outside_scanner_sees_imports_attributes_and_monkeypatches(tmp_path):
    # as above: the check below is only as good as this scanner
    fake = tmp_path / "test_x.py"
    fake.write_text("import snl_video.data.video as video\n"
                    "from snl_video.engine import train as train_module\n"
                    "from snl_video.fileio import atomic_write, _hidden\n"
                    "import snl_video\n"
                    "def test(monkeypatch):\n"
                    "    video._SEQUENTIAL\n"
                    "    monkeypatch.setattr(train_module, '_build_run', None)\n"
                    "    monkeypatch.setattr('snl_video.fileio._open_for_writing', None)\n"
                    "    snl_video.engine.train._train_one_epoch\n"
                    "    atomic_write._not_a_module_attribute\n")
    assert private_uses(fake) == [
        "3: from snl_video.fileio import _hidden",
        "6: snl_video.data.video._SEQUENTIAL",
        "7: setattr snl_video.engine.train._build_run",
        "8: setattr snl_video.fileio._open_for_writing",
        "9: snl_video.engine.train._train_one_epoch",
    ]


def test_tests_and_scripts_use_only_public_snl_video_names():
    offenders = [f"{path.relative_to(ROOT)}:{row}"
                 for folder in OUTSIDE if (ROOT / folder).is_dir()
                 for path in sorted((ROOT / folder).rglob("*.py")) for row in private_uses(path)]
    assert not offenders, ("tests and scripts use the package's public interface: make the name public "
                           "(documented), or test through the public API, or replace a public seam: "
                           + "; ".join(offenders))


def test_no_test_module_imports_another_test_module():
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module or ''}.{a.name}" for a in node.names]
                if any(part.startswith("test_") or part == "conftest"
                       for name in names for part in name.split(".")):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, ("shared test code lives in tests/helpers.py, a reference module or a conftest "
                           f"fixture, never in another test module: {offenders}")
