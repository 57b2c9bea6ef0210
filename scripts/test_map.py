"""Which library module is tested where: the tests mirror the package.

Every module of ``snl_video`` that defines a function or a class has its tests at the mirrored
path: ``snl_video/engine/train.py`` → ``tests/engine/test_train.py``, ``snl_video/fileio.py`` →
``tests/test_fileio.py``, and a package's ``__init__.py`` → ``test_<package>.py`` beside the
package's test folder (``snl_video/weights/formats/__init__.py`` →
``tests/weights/test_formats.py``; the root ``snl_video/__init__.py`` → ``tests/test_snl_video.py``).
A module with many tests may have more test modules beside the mirrored one, each named
``test_<module>_<aspect>.py`` (``tests/engine/test_train_scaling.py`` beside ``test_train.py``).
A few modules are tested elsewhere on purpose; :data:`ELSEWHERE` names the file and says why.

Test modules that mirror no library module are cross-cutting and live in the folders of
:data:`THEME_FOLDERS` (see ``tests/README.md``); any other is listed as a stray.

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
_VERB_VIA_CLI = "a verb's flags over an engine function, run through the CLI beside that function's tests"
_FORMAT_RECORD = ("a checkpoint format record: data, tested as a matrix over weights.formats.FORMATS "
                  "(detection, fresh interpreter, converters on documented layouts, logits parity)")
ELSEWHERE: dict[str, tuple[str, str]] = {
    "snl_video/__init__.py": ("tests/engine/test_api.py", "the lazy facade: snl_video.<verb> is engine.api's verb"),
    # commands/: flags → an engine call; each verb's CLI runs are tested with its engine function
    "snl_video/commands/compare.py": ("tests/engine/test_compare.py", _VERB_VIA_CLI),
    "snl_video/commands/config_cmd.py": ("tests/config/test_validation.py", _VERB_VIA_CLI),
    "snl_video/commands/download.py": ("tests/data/test_download.py", _VERB_VIA_CLI),
    "snl_video/commands/eval_cmd.py": ("tests/engine/test_evaluate.py", _VERB_VIA_CLI),
    "snl_video/commands/explain.py": ("tests/engine/test_explain.py", _VERB_VIA_CLI),
    "snl_video/commands/export.py": ("tests/engine/test_export.py", _VERB_VIA_CLI),
    "snl_video/commands/features.py": ("tests/engine/test_features.py", _VERB_VIA_CLI),
    "snl_video/commands/make_synthetic.py": ("tests/data/test_synthetic.py", _VERB_VIA_CLI),
    "snl_video/commands/nonlocal_cmd.py": ("tests/test_cli.py", _VERB_VIA_CLI),
    "snl_video/commands/predict.py": ("tests/engine/test_predict.py", _VERB_VIA_CLI),
    "snl_video/commands/prepare.py": ("tests/data/test_prepare.py", _VERB_VIA_CLI),
    "snl_video/commands/profile.py": ("tests/models/test_profiling.py", _VERB_VIA_CLI),
    "snl_video/commands/publish.py": ("tests/engine/test_publish.py", _VERB_VIA_CLI),
    "snl_video/commands/spectrum.py": ("tests/engine/test_spectrum.py", _VERB_VIA_CLI),
    "snl_video/commands/study.py": ("tests/engine/test_study.py", _VERB_VIA_CLI),
    "snl_video/commands/train.py": ("tests/engine/test_train.py", _VERB_VIA_CLI),
    "snl_video/data/prepared.py": ("tests/data/test_prepare.py", "the prepared format, written by prepare and read back"),
    "snl_video/data/splitting.py": ("tests/data/test_sources.py", "group-aware splits, through each source's manifest"),
    "snl_video/engine/distributed.py": ("tests/engine/test_train_scaling.py", "2-process gloo DDP against one process"),
    "snl_video/engine/metric_log.py": ("tests/engine/test_train.py", "the training log, read back after a run"),
    "snl_video/engine/onnx_ops.py": ("tests/engine/test_export.py", "ONNX export of the rational filters, verified"),
    "snl_video/engine/precision.py": ("tests/engine/test_export.py", "bf16 against fp32 (also predict, explain)"),
    "snl_video/engine/reports.py": ("tests/engine/test_metrics.py", "the report of the metrics it holds"),
    "snl_video/engine/resume.py": ("tests/engine/test_preflight.py", "resume checks run before anything heavy"),
    "snl_video/engine/state_fit.py": ("tests/e2e/test_eval_and_interrupts.py", "a checkpoint that does not fit"),
    "snl_video/engine/study_report.py": ("tests/engine/test_study.py", "a study's table and figure from its summary"),
    "snl_video/models/reference_keys.py": ("tests/models/test_architectures.py", "the key maps of the parity tests"),
    "snl_video/models/resnet3d.py": ("tests/models/test_architectures.py",
                                     "the generic class, through every architecture it builds, against references"),
    "snl_video/models/x3d.py": ("tests/models/test_slowfast.py", "one pytorchvideo parity harness for both families"),
    "snl_video/nonlocal_blocks/block.py": ("tests/nonlocal_blocks/test_registry.py", "every kind's block contract"),
    "snl_video/nonlocal_blocks/checks.py": ("tests/nonlocal_blocks/test_registry.py", "option errors of every kind"),
    "snl_video/nonlocal_blocks/filters.py": ("tests/nonlocal_blocks/test_presets.py",
                                             "each filter against its dense formula"),
    "snl_video/weights/errors.py": ("tests/test_errors.py", "every error family and its builtin base"),
    "snl_video/version.py": ("tests/test_cli.py", "the version from the metadata, as --version prints it"),
    **{f"snl_video/weights/formats/{name}.py": ("tests/weights/test_formats_converters.py", _FORMAT_RECORD)
       for name in ("architecture", "base", "bat_video", "caffe2", "ffc", "generic", "hara2017", "mmaction2",
                    "pytorchvideo", "pytorchvideo_slowfast", "pytorchvideo_x3d", "slowfast", "torchvision_2d",
                    "torchvision_baseline", "torchvision_video")},
}

#: Folders under ``tests/`` for tests that exercise several modules at once, and what each holds.
THEME_FOLDERS: dict[str, str] = {
    "tests/e2e": "whole runs through the command line or the Python API, across several layers",
    "tests/faults": "injected faults (full disk, interrupts, unwritable folders) across every writer",
    "tests/fuzz": "property-based tests (hypothesis) of the parsers that read users' files and strings",
    "tests/project": "the project itself: layers, dependencies, the installable wheel",
    "tests/scripts": "the scripts under scripts/, run on small made-up inputs",
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


def is_aspect_of(test: Path, root: Path) -> bool:
    """Whether ``tests/<dir>/test_<module>_<aspect>.py`` is a further test module of the library
    module (or package) ``snl_video/<dir>/<module>``: a prefix of its name up to an underscore."""
    folder = root / PACKAGE / Path(*test.parent.parts[1:])
    words = test.stem.removeprefix("test_").split("_")
    return any((folder / f"{'_'.join(words[:n])}.py").is_file() or (folder / "_".join(words[:n])).is_dir()
               for n in range(1, len(words)))


def strays(root: Path, rows: list[Row]) -> list[str]:
    """Test modules that mirror no library module, are no aspect of one and sit outside the theme folders."""
    mirrored = {row.test for row in rows} | {str(mirrored_test(p.relative_to(root)))
                                             for p in (root / PACKAGE).rglob("*.py")}
    found = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        rel = path.relative_to(root)
        if (str(rel) in mirrored or is_aspect_of(rel, root)
                or any(str(rel).startswith(folder + "/") for folder in THEME_FOLDERS)):
            continue
        found.append(str(rel))
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
    mirrored = sum(row.exists and not row.elsewhere for row in rows)
    elsewhere = sum(row.exists and bool(row.elsewhere) for row in rows)
    print(f"\nlibrary modules with behaviour: {len(rows)}; tested at the mirrored path: {mirrored}; "
          f"elsewhere on purpose: {elsewhere}; without a test module: {len(rows) - mirrored - elsewhere}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
