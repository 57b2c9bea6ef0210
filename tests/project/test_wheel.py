"""The installable wheel: ``python -m build`` gives a wheel that, installed into a fresh virtual
environment and run from a folder with no checkout, answers ``--version``, ``nonlocal``,
``config list / show / check`` by a shipped recipe's name, and ``predict`` with a published
model folder, exactly as the checkout does.

The wheel is built offline (``--no-isolation``: the test extra installs setuptools) from a copy
of the package's sources, so the checkout gets no ``build/`` folder. The fresh environment gets
the wheel only (``pip install --no-deps --no-index``); its dependencies (torch, ...) come from
this interpreter's environment through a ``.pth`` file naming its site-packages, so nothing is
downloaded. A path in a ``.pth`` file is appended to ``sys.path`` without reading that folder's
own ``.pth`` files, so the checkout's editable install (a ``.pth`` there) does not reach the new
environment: the first test checks that ``snl_video`` is imported from the installed wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch

import snl_video
from snl_video.config import list_recipes, packaged_recipes_dir
from snl_video.data.synthetic import encode_avi, motion_classes, render_video
from snl_video.engine.builders import build_model_from_config
from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint
from snl_video.engine.publish import publish_model
from snl_video.nonlocal_blocks import list_nonlocal_kinds

from ..helpers import tiny_config

REPO = Path(__file__).resolve().parents[2]
NAMES = ["right", "left", "up", "down"]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of pyproject.toml, README.md and snl_video/."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "snl_video", src / "snl_video", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(root / "dist"), str(src)],
         env={**os.environ, "PYTHONPATH": ""})
    (built,) = (root / "dist").glob("snl_video-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """A fresh virtual environment with the wheel installed, and where to run it from: the
    environment's ``snl-video``, its python, an empty working folder and the environment
    variables (no PYTHONPATH: nothing of the checkout is importable)."""
    root = tmp_path_factory.mktemp("venv")
    env_dir = root / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "--disable-pip-version-check", "--quiet", str(wheel)],
         # with the checkout on PYTHONPATH, pip would find snl_video "already satisfied" and install nothing
         env={**os.environ, "PYTHONPATH": ""})
    # the dependencies: this environment's site-packages, appended after the new one's (see the module's docstring)
    new_site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         env={**os.environ, "PYTHONPATH": ""}).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (new_site / "zz_dependencies_from_the_test_env.pth").write_text("".join(f"{p}\n" for p in ours))
    workdir = root / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    cli = python.parent / ("snl-video.exe" if os.name == "nt" else "snl-video")
    return {"cli": str(cli), "python": str(python), "cwd": workdir, "env": env, "site": new_site}


def _cli(installed: dict, *args: str) -> str:
    return _run([installed["cli"], *args], cwd=installed["cwd"], env=installed["env"]).stdout


def test_the_wheel_holds_the_recipes_the_schema_and_py_typed(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"snl_video/py.typed", "snl_video/config/recipe.schema.json", "snl_video/configs/README.md"} <= names
    shipped = {f"snl_video/configs/{p.relative_to(packaged_recipes_dir()).as_posix()}"
               for p in packaged_recipes_dir().rglob("*.yaml")}
    assert len(shipped) >= 40 and shipped == {n for n in names if n.startswith("snl_video/configs/") and n.endswith(".yaml")}
    assert not any("__pycache__" in n or n.startswith(("tests/", "configs/")) for n in names)


def test_installed_wheel_runs_without_a_checkout(installed):
    where = _run([installed["python"], "-c", "import snl_video; print(snl_video.__file__)"],
                 cwd=installed["cwd"], env=installed["env"]).stdout.strip()
    assert Path(where).resolve().is_relative_to(installed["site"].resolve()), where  # the wheel, not the checkout
    assert _cli(installed, "--version").split() == ["snl_video", snl_video.__version__]
    nonlocal_kinds = _cli(installed, "nonlocal")
    assert all(kind in nonlocal_kinds for kind in list_nonlocal_kinds())
    listed = [line.split()[0] for line in _cli(installed, "config", "list").splitlines()]
    assert listed == [info.name for info in list_recipes()] and "ucf101/r3d50_snl" in listed
    assert _cli(installed, "config", "show", "ucf101/r3d50_snl") == (
        packaged_recipes_dir() / "ucf101" / "r3d50_snl.yaml").read_text(encoding="utf-8")
    # --config by name: the packaged recipe, its schema line resolving inside the installed package
    resolved = _cli(installed, "config", "check", "ucf101/r3d50_snl", "--no-data")
    assert "nonlocal_blocks:" in resolved and "kind: snl" in resolved
    recipe = installed["site"] / "snl_video" / "configs" / "ucf101" / "r3d50_snl.yaml"
    schema_ref = recipe.read_text(encoding="utf-8").splitlines()[0].split("$schema=")[1]
    assert (recipe.parent / schema_ref).resolve() == (installed["site"] / "snl_video" / "config" / "recipe.schema.json")


@pytest.fixture(scope="module")
def published_and_video(tmp_path_factory) -> tuple[Path, Path]:
    """A published folder of a tiny r3d10 + SNL model (its block moved off the identity) and one
    synthetic video of 16 frames."""
    root = tmp_path_factory.mktemp("published")
    cfg = tiny_config(root / "unused_data", root / "run")
    torch.manual_seed(0)
    model = build_model_from_config(cfg, load_weights=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "nonlocal" in name:
                p.add_(0.05 * torch.randn_like(p))
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(cfg, class_names=NAMES)},
                           root / "run" / "checkpoints" / "last.pt")
    folder = publish_model(ckpt, out=root / "model")
    import numpy as np

    video = root / "clip.avi"
    encode_avi(render_video(motion_classes()[0], 16, np.random.default_rng(0)), video)
    return folder, video


def test_installed_wheel_predicts_as_the_checkout_does(installed, published_and_video):
    folder, video = published_and_video
    out = installed["cwd"] / "predictions.json"
    _cli(installed, "predict", str(video), "--weights", str(folder), "--top-k", "4", "--output-file", str(out))
    (got,) = json.loads(out.read_text())["predictions"]
    (expected,) = snl_video.predict(video, weights=folder, top_k=4).predictions
    assert [c["class"] for c in got["top_k"]] == [c.class_name for c in expected.top_k]
    assert sorted(c["class"] for c in got["top_k"]) == sorted(NAMES)
    for c, e in zip(got["top_k"], expected.top_k):
        assert c["probability"] == pytest.approx(e.probability, rel=1e-5, abs=1e-7)
