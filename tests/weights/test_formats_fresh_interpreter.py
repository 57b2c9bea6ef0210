"""Every known checkpoint format is detected and converted in a fresh interpreter that imports
only ``snl_video.weights``: no format depends on another package having been imported first.

Each case writes a small file in the upstream container and key layout, then a subprocess
reads, detects and converts it. The converted keys must be exactly the keys of the
snl_video model that format's weights are for (built here, in the parent, on the meta
device), so the subprocess's conversion is checked against the models independently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
import torchvision

import snl_video
from snl_video.weights import KNOWN_FORMATS

from .layouts import (
    bat_resnet50_state,
    caffe2_blobs,
    dump_py2_style,
    ffc_resnet50_state,
    hara_resnet_state,
    mmaction2_i3d_state,
    sgd_state,
    shrunk,
    slowfast_slow_state,
)

REPO_ROOT = Path(snl_video.__file__).resolve().parents[1]
# Packages above the weights layer: none may be imported to read and convert a checkpoint.
UPPER_LAYERS = ("snl_video.models", "snl_video.data", "snl_video.config", "snl_video.engine", "snl_video.commands",
                "snl_video.cli")

_CHILD = """
import json, sys
import snl_video.weights as weights
detected = weights.read_checkpoint(sys.argv[1])
state = weights.convert_state(detected)
print(json.dumps({
    "format": detected.format,
    "num_classes": detected.num_classes,
    "keys": sorted(state),
    "modules": sorted(m for m in sys.modules if m.startswith("snl_video")),
}))
"""


def _pytorchvideo_i3d(path: Path) -> None:
    from pytorchvideo.models.hub import resnet as hub

    state = hub.i3d_r50(pretrained=False, stem_dim_out=8).state_dict()
    torch.save({"model_state": shrunk(state, keep=("blocks.6.proj.weight",))}, path)


def _pytorchvideo_slowfast(path: Path) -> None:
    from pytorchvideo.models.slowfast import create_slowfast

    torch.manual_seed(0)
    state = create_slowfast(model_num_class=400).state_dict()
    torch.save({"model_state": shrunk(state, keep=("blocks.6.proj.weight",))}, path)


def _pytorchvideo_x3d(path: Path) -> None:
    from pytorchvideo.models.x3d import create_x3d

    torch.manual_seed(0)
    state = create_x3d(model_num_class=400).state_dict()
    torch.save({"model_state": shrunk(state, keep=("blocks.5.proj.weight",))}, path)


def _write(fmt: str, path: Path) -> None:
    """Write a checkpoint of format ``fmt`` as its upstream project saves it."""
    if fmt == "hara2017":
        state = hara_resnet_state()
        torch.save({"epoch": 200, "arch": "resnet-50", "state_dict": {f"module.{k}": v for k, v in state.items()},
                    "optimizer": sgd_state(2)}, path)
    elif fmt == "hara2020":
        torch.save({"epoch": 200, "arch": "resnet", "state_dict": hara_resnet_state(), "optimizer": sgd_state(2),
                    "scheduler": {"last_epoch": 200}}, path)
    elif fmt == "pytorchvideo":
        _pytorchvideo_i3d(path)
    elif fmt == "pytorchvideo_slowfast":
        _pytorchvideo_slowfast(path)
    elif fmt == "pytorchvideo_x3d":
        _pytorchvideo_x3d(path)
    elif fmt == "torchvision_video":
        torch.save(shrunk(torchvision.models.video.r2plus1d_18(weights=None).state_dict(), keep=("fc.weight",)), path)
    elif fmt == "mmaction2":
        torch.save({"meta": {"epoch": 100}, "state_dict": mmaction2_i3d_state(nonlocal_blocks=False)}, path)
    elif fmt == "slowfast":
        torch.save({"epoch": 196, "model_state": slowfast_slow_state(), "optimizer_state": sgd_state(2),
                    "cfg": "MODEL:\n  ARCH: slow\n"}, path)
    elif fmt == "caffe2":
        dump_py2_style({"blobs": caffe2_blobs()}, path)
    elif fmt == "torchvision_baseline":
        with torch.device("meta"):
            state = torchvision.models.video.swin3d_t().state_dict()
        torch.save(shrunk(state, keep=("head.weight",)), path)
    elif fmt == "torchvision_2d":
        torch.save(shrunk(torchvision.models.resnet18(weights=None).state_dict(), keep=("fc.weight",)), path)
    elif fmt == "ffc":
        torch.save({"epoch": 90, "arch": "ffc_resnet50", "best_acc1": 77.6, "optimizer": sgd_state(2),
                    "state_dict": {f"module.{k}": v for k, v in ffc_resnet50_state().items()}}, path)
    elif fmt == "bat_video":
        torch.save({"epoch": 100, "arch": "c2d_resnet50", "state_dict": bat_resnet50_state("c2d"), "best_prec1": 75.5,
                    "optim": {}}, path)
    elif fmt == "generic":
        torch.save({"model": {"encoder.weight": torch.zeros(3, 4), "head.weight": torch.zeros(5, 3)}, "step": 7}, path)
    else:  # pragma: no cover - a new format needs its case here
        raise AssertionError(f"no test checkpoint for format {fmt!r}")


def _model_keys(name: str, num_classes: int) -> list[str]:
    from snl_video.models import build_model

    with torch.device("meta"):
        return sorted(build_model(name, num_classes=num_classes).state_dict())


# format → (class count the file's head has, the converted keys expected)
EXPECTED: dict[str, tuple[int | None, Callable[[], list[str]]]] = {
    "hara2017": (400, lambda: _model_keys("r3d50", 400)),
    "hara2020": (400, lambda: _model_keys("r3d50", 400)),
    "pytorchvideo": (400, lambda: _model_keys("i3d_r50", 400)),
    "pytorchvideo_slowfast": (400, lambda: _model_keys("slowfast_r50", 400)),
    "pytorchvideo_x3d": (400, lambda: _model_keys("x3d_m", 400)),
    "torchvision_video": (400, lambda: _model_keys("r2plus1d_18", 400)),
    "mmaction2": (400, lambda: _model_keys("i3d_r50", 400)),
    "slowfast": (400, lambda: _model_keys("slow_r50", 400)),
    "caffe2": (400, lambda: _model_keys("i3d_r50", 400)),
    "torchvision_baseline": (400, lambda: _model_keys("swin3d_t", 400)),
    "torchvision_2d": (1000, lambda: _model_keys("r3d18", 1000)),
    "ffc": (1000, lambda: _model_keys("ffc_c2d_r50", 1000)),
    "bat_video": (400, lambda: _model_keys("bat_c2d_r50", 400)),
    "generic": (None, lambda: ["encoder.weight", "head.weight"]),
}


def test_every_known_format_has_a_case_here():
    assert set(EXPECTED) == set(KNOWN_FORMATS)


@pytest.mark.parametrize("fmt", KNOWN_FORMATS)
def test_format_is_detected_and_converted_importing_only_the_weights_layer(tmp_path, fmt):
    path = tmp_path / f"{fmt}.ckpt"
    _write(fmt, path)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["format"] == fmt
    upper = [m for m in result["modules"] if m.startswith(UPPER_LAYERS)]
    assert not upper, f"reading a {fmt} checkpoint imported {upper}"
    num_classes, expected_keys = EXPECTED[fmt]
    assert result["num_classes"] == num_classes
    assert result["keys"] == expected_keys()
