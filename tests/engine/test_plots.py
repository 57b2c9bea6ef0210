"""Training curves: the plotted series are the runs' epoch records, written as one PNG atomically."""

from __future__ import annotations

import pytest
from PIL import Image

from snl_video.engine.plots import curve_series, plot_training_curves

HISTORY = [
    {"kind": "step", "epoch": 1, "step": 1, "loss": 9.0},
    {"kind": "epoch", "epoch": 1, "step": 4, "train_loss": 2.0, "train_top1": 20.0},
    {"kind": "epoch", "epoch": 2, "step": 8, "train_loss": 1.5, "train_top1": 40.0, "val_clip_top1": 35.0},
    {"kind": "eval", "epoch": 2, "step": 8, "clip_top1": 35.0},
    {"kind": "epoch", "epoch": 3, "step": 12, "train_loss": 1.0, "train_top1": 60.0},
]


def test_series_are_the_epoch_records():
    s = curve_series(HISTORY)
    assert s["train_loss"] == [(1, 2.0), (2, 1.5), (3, 1.0)]  # step records left out
    assert s["train_top1"] == [(1, 20.0), (2, 40.0), (3, 60.0)]
    assert s["val_clip_top1"] == [(2, 35.0)]  # only the evaluated epoch


def test_plot_writes_one_png_for_several_runs(tmp_path):
    other = [dict(h, train_loss=h["train_loss"] * 2) if "train_loss" in h else h for h in HISTORY]
    path = tmp_path / "out" / "curves.png"
    plotted = plot_training_curves({"baseline": HISTORY, "snl": other}, path)
    assert plotted["snl"]["train_loss"] == [(1, 4.0), (2, 3.0), (3, 2.0)]
    assert set(plotted) == {"baseline", "snl"}
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 600
    assert [p.name for p in path.parent.iterdir()] == ["curves.png"]  # no temporary left behind
    with pytest.raises(ValueError, match="no epoch records"):
        plot_training_curves({"empty": [{"kind": "step", "epoch": 1, "step": 1, "loss": 1.0}]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
