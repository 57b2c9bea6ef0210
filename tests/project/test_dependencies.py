"""Dependency decisions that the code must keep true (README, "Dependencies and why")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_library_never_imports_pytorchvideo():
    # pytorchvideo is a test extra only: importing every module of the package must not load it
    code = (
        "import importlib, pkgutil, sys, snl_video\n"
        "for m in pkgutil.walk_packages(snl_video.__path__, 'snl_video.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'pytorchvideo'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
