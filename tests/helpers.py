"""Helpers shared by several test packages (not fixtures: plain functions; the fixtures are in the
conftest.py files). A test module imports shared code from here, never from another test module."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from snl_video.config import ExperimentConfig, config_from_dict

#: The repository root (tests/helpers.py sits one folder below it).
REPO = Path(__file__).resolve().parents[1]

#: Every training recipe under configs/; the study specs in configs/studies/ (all but the
#: ``*_base.yaml`` recipes they name) are checked by tests/engine/test_study.py.
CONFIG_FILES = [p for p in sorted((REPO / "configs").rglob("*.yaml")) + sorted((REPO / "configs").rglob("*.yml"))
                if not (p.parent.name == "studies" and not p.stem.endswith("_base"))]

#: Classes of the tiny synthetic dataset of the ``tiny_prepared`` fixture (tests/conftest.py).
NUM_CLASSES = 4


def tiny_config(data_root: Path, out: Path, **sections: dict) -> ExperimentConfig:
    """A recipe small enough for a 1-thread CPU test: r3d10 at 1/4 width, 6x40x40 clips, one SNL block."""
    base = {
        "name": "tiny",
        "model": {"name": "r3d10", "num_classes": NUM_CLASSES, "options": {"widen_factor": 0.25, "conv1_t_size": 3}},
        "nonlocal_blocks": {"kind": "snl", "positions": {"layer3": [0]}},
        "data": {"root": str(data_root), "num_frames": 6, "sampling_stride": 2, "crop_size": 40, "batch_size": 8,
                 "num_workers": 0, "horizontal_flip": False, "train_scales": [1.0, 0.84],
                 "mean": [0.45, 0.45, 0.45], "std": [0.225, 0.225, 0.225]},
        "optim": {"lr": 0.02},
        "schedule": {"epochs": 3, "kind": "cosine"},
        "eval": {"num_clips": 2, "num_crops": 1, "batch_size": 8, "every_epochs": 0},
        "runtime": {"device": "cpu", "deterministic": True, "output_dir": str(out), "progress": False, "log_every": 1},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    return config_from_dict(base)



def moving_frames(num_frames: int, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """Frames that all differ strongly: the bottom half writes the frame number in 6 black/white
    bit columns (any two frames differ in at least one 21x48 block), the top half has a bar
    moving over noise (motion for the codec to predict)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 120, size=(height // 4, width // 4, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((4, 4, 1), np.uint8))
    frames = np.repeat(base[None], num_frames, axis=0)
    assert num_frames <= 64
    column = width // 6
    for t in range(num_frames):
        x = (5 * t) % (width - 8)
        frames[t, : height // 2, x : x + 8] = 255
        for bit in range(6):
            frames[t, height // 2 :, bit * column : (bit + 1) * column] = 255 if (t >> bit) & 1 else 0
    return frames




def randomize_batchnorm(model: nn.Module, *, seed: int = 0) -> None:
    """Give every BatchNorm random affine parameters and running statistics, so an eval-mode
    parity test also checks that each norm sits where the reference puts it."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)


def bn_on_running_statistics(model: nn.Module) -> None:
    """Keep every BatchNorm in eval mode (running statistics) while the rest trains.

    Batch statistics over the tiny test model's last 1x2x2 maps divide by variances near zero,
    which turns float32 rounding into percent-size gradient differences between any two
    summation orders (another memory layout, checkpointed recomputation, another CPU's
    kernels). With running statistics the network is well conditioned, so two runs that differ
    only in summation order stay within a bound derived from float32 precision on any machine.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.train = lambda mode=True, m=module: m  # model.train() leaves it in eval mode


#: Bound on ``max|a − b| / max|a|`` for two float32 trainings that differ only in the order of
#: their sums: ~800 float32 epsilons (1.19e-7), room for a few epochs of a well-conditioned
#: tiny model on any CPU's kernels, while a real bug (mixed-up channels, a lost gradient
#: term) moves a tensor by a sizeable fraction of its own scale.
SUMMATION_ORDER_BOUND = 1e-4


def assert_same_up_to_summation_order(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Every floating tensor of ``a`` equals ``b``'s within :data:`SUMMATION_ORDER_BOUND` of its scale."""
    assert a.keys() == b.keys()
    for key in a:
        if not a[key].is_floating_point():
            assert torch.equal(a[key], b[key]), key
            continue
        scale = a[key].abs().max().item()
        diff = (a[key].double() - b[key].double()).abs().max().item()
        assert diff <= SUMMATION_ORDER_BOUND * scale + 1e-12, (key, diff, scale)


def write_random_video(path: Path, *, num_frames: int, codec: str = "mpeg4", seed: int = 0, fps: int = 25,
                       height: int = 48, width: int = 64) -> np.ndarray:
    """Encode ``num_frames`` uniformly random RGB frames into ``path`` with PyAV (the container from the
    suffix: .mkv, .webm, .mp4, .avi) and return the frames, ``uint8 (T, H, W, 3)``.

    Random frames make every frame unlike its neighbours, so a reader that drops, repeats or
    shifts a frame cannot pass a comparison by accident."""
    import av

    frames = np.random.default_rng(seed).integers(0, 255, (num_frames, height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (the scripts are no package), once per process.

    Registered in ``sys.modules`` under ``scripts.<name>`` before it runs, so the dataclasses it
    defines resolve their annotations."""
    module_name = f"scripts.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None, name
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def build_models_on_running_statistics(monkeypatch) -> None:
    """Make training build every model with its BatchNorms on running statistics
    (:func:`bn_on_running_statistics`), through the public seam
    ``snl_video.engine.train.build_model_from_config``."""
    from snl_video.engine import train as train_module

    real_build = train_module.build_model_from_config

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        bn_on_running_statistics(model)
        return model

    monkeypatch.setattr(train_module, "build_model_from_config", build)


def write_dedented(folder: Path, name: str, text: str) -> Path:
    """Write ``text``, dedented (a recipe written inline in a test), to ``folder / name``."""
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error_keys(exc) -> list[str]:
    """The keys a :class:`snl_video.config.ConfigError` reports, in its order."""
    return [key for key, _ in exc.errors]
