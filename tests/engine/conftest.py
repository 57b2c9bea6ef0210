"""A tiny prepared synthetic dataset and a tiny recipe for the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from snl_video.config import ExperimentConfig, config_from_dict
from snl_video.data.prepare import PrepareSettings, prepare_ucf101
from snl_video.data.synthetic import make_synthetic_ucf101

NUM_CLASSES = 4


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 motion classes (right / left / up / down) x 16 videos, prepared at short side 48."""
    root = tmp_path_factory.mktemp("tiny_ucf")
    make_synthetic_ucf101(root / "raw", num_classes=NUM_CLASSES, videos_per_class=16, video_frames=16, frame_jitter=2,
                          seed=0, progress=False)
    prepare_ucf101(root / "raw" / "UCF-101", root / "raw" / "ucfTrainTestlist", root / "prepared", splits=[1],
                   workers=1, settings=PrepareSettings(short_side=48, num_frames=6, storage="npy"), progress=False)
    return root / "prepared"


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


@pytest.fixture(scope="session")
def tiny_snl_checkpoint(tiny_prepared: Path, tmp_path_factory: pytest.TempPathFactory):
    """A self-describing checkpoint of the tiny recipe (one SNL block, untrained), one of its videos,
    the recipe and the model: ``(cfg, checkpoint, video, model)``."""
    import torch

    from snl_video.engine.builders import build_model_from_config
    from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint

    out = tmp_path_factory.mktemp("tiny_snl_ckpt")
    cfg = tiny_config(tiny_prepared, out / "run")
    torch.manual_seed(0)
    model = build_model_from_config(cfg).eval()
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(cfg, class_names=None)},
                           out / "c.pt")
    video = sorted((tiny_prepared.parent / "raw" / "UCF-101").rglob("*.avi"))[0]
    return cfg, ckpt, video, model
