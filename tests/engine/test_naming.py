"""Readable names everywhere: class names for subsets, source videos, legible confusion PNG, titled plots."""

from __future__ import annotations

import csv
import json
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from snl_video.data.ucf101 import read_class_index
from snl_video.engine.evaluate import run_evaluation
from snl_video.engine.plots import plot_confusion_matrix
from snl_video.engine.reports import compute_metrics_report
from snl_video.engine.plots import plot_training_curves
from snl_video.engine.train import train

from ..helpers import tiny_config


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_subset_dataset_names_every_class_and_each_source_video(tiny_prepared, tmp_path):
    splits = tiny_prepared.parent / "raw" / "ucfTrainTestlist"
    every = read_class_index(splits)
    # prepare records every class of the class list, also those a subset lacks
    assert json.loads((tiny_prepared / "classes.json").read_text()) == every
    # a subset: only classes 1 and 3 are in the index (the frames are shared by a link)
    subset = tmp_path / "subset"
    subset.mkdir()
    os.symlink(tiny_prepared / "videos", subset / "videos")
    index = pd.read_csv(tiny_prepared / "index.csv", keep_default_na=False)
    index[index["label"].isin([1, 3])].to_csv(subset / "index.csv", index=False)
    for name in ("classes.json", "settings.json"):
        (subset / name).write_text((tiny_prepared / name).read_text())
    cfg = tiny_config(subset, tmp_path / "run", schedule={"epochs": 1}, runtime={"tensorboard": False})
    result = train(cfg)
    run_evaluation(cfg, result.last_checkpoint)
    out = tmp_path / "run" / "eval"
    assert [r["class_name"] for r in _rows(out / "per_class_accuracy.csv")] == every  # old: '0', 'b', '2', 'd'
    with open(out / "confusion_matrix.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[1:] == every
    predictions = _rows(out / "predictions.csv")
    listed = set(index.loc[(index["label"].isin([1, 3])) & (index["subset_1"] == "test"), "path"])
    assert {p["video"] for p in predictions} == listed and all(v.endswith(".avi") for v in listed)
    with Image.open(out / "confusion_matrix.png") as image:
        assert "run tiny" in image.info["Title"] and "checkpoint last.pt (epoch 1)" in image.info["Title"]


def test_the_confusion_png_of_a_large_label_set_draws_only_the_classes_present(tmp_path):
    rng = np.random.default_rng(0)
    present = [3, 17, 40, 41, 77, 99]
    labels = np.repeat(present, 4)
    scores = rng.normal(size=(len(labels), 101))
    scores[np.arange(len(labels)), labels] += 10.0  # every prediction right: only the present classes occur
    names = [f"Class{i:03d}" for i in range(101)]
    report = compute_metrics_report(scores, labels, scores, labels, np.arange(len(labels)), num_classes=101,
                                    class_names=names, extra={"run": "r3d50_snl", "checkpoint": "runs/x/best.pt",
                                                              "epoch": 40})
    path = plot_confusion_matrix(report, tmp_path / "cm.png")
    with Image.open(path) as image:
        # old: a 101 x 101 figure (2874 px) with 6-point names for 6 classes
        assert image.size[0] < 1000
        assert image.info["Title"] == "run r3d50_snl, checkpoint best.pt (epoch 40)"


def test_curves_have_integer_epoch_ticks_and_a_title_naming_the_runs(tmp_path, monkeypatch):
    history = [{"kind": "epoch", "epoch": e, "step": e, "train_loss": 1.0 / e, "train_top1": 10.0 * e,
                "val_clip_top1": 5.0 * e} for e in (1, 2, 3)]
    figures = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figures.append(fig), real_close(fig)))
    path = tmp_path / "curves.png"
    plot_training_curves({"baseline": history, "snl": history}, path)
    fig = figures[-1]
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks  # old: 1.0, 1.25, 1.5, ...
    with Image.open(path) as image:
        assert image.info["Title"] == "training curves: baseline, snl"


def test_a_long_confusion_title_fits_in_the_png(tmp_path, monkeypatch):
    labels = np.array([0, 1, 0, 1])
    scores = np.eye(2)[labels] * 5.0
    run = "r3d50_snl_kinetics400_finetuned_ucf101_split1_lr0.01_" * 2
    report = compute_metrics_report(scores, labels, scores, labels, np.arange(4), num_classes=2,
                                    class_names=["a", "b"], extra={"run": run, "checkpoint": "best.pt", "epoch": 40})
    closed = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (closed.append(fig), real_close(fig)))
    path = plot_confusion_matrix(report, tmp_path / "cm.png")
    (fig,) = closed
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    box = fig.axes[0].title.get_window_extent(FigureCanvasAgg(fig).get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width  # inside the figure: wrapped, not cut off at its edges
    with Image.open(path) as image:
        assert image.format == "PNG"


def _renumbered(prepared, dest, new_label):
    """A copy of a prepared folder (frames shared by a link) numbering its classes otherwise:
    the class of old label ``l`` gets label ``new_label[l]`` (as ``prepare folder`` numbers
    UCF-101's classes alphabetically where ``classInd.txt`` does not)."""
    dest.mkdir()
    os.symlink(prepared / "videos", dest / "videos")
    names = json.loads((prepared / "classes.json").read_text())
    renamed = [""] * len(names)
    for old, new in enumerate(new_label):
        renamed[new] = names[old]
    (dest / "classes.json").write_text(json.dumps(renamed))
    (dest / "settings.json").write_text((prepared / "settings.json").read_text())
    index = pd.read_csv(prepared / "index.csv", keep_default_na=False)
    index["label"] = [new_label[label] for label in index["label"]]
    index.to_csv(dest / "index.csv", index=False)
    return dest


def _checkpoint_naming_its_classes(cfg, path):
    import torch

    from snl_video.engine.builders import build_model_from_config, class_names
    from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint

    torch.manual_seed(3)
    model = build_model_from_config(cfg)
    torch.nn.init.normal_(model.fc.weight, std=1.0)  # a head that tells the classes apart
    return save_checkpoint({"model": model.state_dict(), "epoch": 1,
                            **checkpoint_metadata(cfg, class_names=class_names(cfg))}, path)


def test_eval_on_a_preparation_numbering_the_classes_otherwise_scores_them_by_name(tiny_prepared, tmp_path):
    import dataclasses

    cfg = tiny_config(tiny_prepared, tmp_path / "run", eval={"num_clips": 2, "num_crops": 1})
    ckpt = _checkpoint_naming_its_classes(cfg, tmp_path / "c.pt")
    same = run_evaluation(cfg, ckpt, out_dir=tmp_path / "same")
    other = _renumbered(tiny_prepared, tmp_path / "other", new_label=[2, 0, 3, 1])
    moved = run_evaluation(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(other))), ckpt,
                           out_dir=tmp_path / "moved")
    a = {r["video"]: r for r in _rows(tmp_path / "same" / "predictions.csv")}
    b = {r["video"]: r for r in _rows(tmp_path / "moved" / "predictions.csv")}
    assert set(a) == set(b) and len(a) > 0
    # the same weights on the same videos: each video gets the same class (by name) and the same
    # probability of its true class; before, the scores were read by position (old label 0 = 'b')
    assert {v: (r["label_name"], r["predicted_name"]) for v, r in a.items()} \
        == {v: (r["label_name"], r["predicted_name"]) for v, r in b.items()}
    assert all(abs(float(a[v]["prob_label"]) - float(b[v]["prob_label"])) < 1e-6 for v in a)
    assert moved.video_top1 == same.video_top1 and moved.clip_top1 == same.clip_top1
    assert 0 < same.video_top1 < 100  # a head that gets some right and some wrong: positions matter


def test_eval_on_a_dataset_of_other_classes_is_an_error_naming_them(tiny_prepared, tmp_path):
    import dataclasses

    import pytest

    from snl_video.errors import InvalidValueError

    cfg = tiny_config(tiny_prepared, tmp_path / "run")
    ckpt = _checkpoint_naming_its_classes(cfg, tmp_path / "c.pt")
    other = _renumbered(tiny_prepared, tmp_path / "other", new_label=[0, 1, 2, 3])
    names = json.loads((other / "classes.json").read_text())
    (other / "classes.json").write_text(json.dumps(names[:3] + ["Juggling"]))
    with pytest.raises(InvalidValueError, match="other classes than the dataset's.*'Juggling'"):
        run_evaluation(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(other))), ckpt,
                       out_dir=tmp_path / "e")
    assert not (tmp_path / "e").exists()  # refused before anything is written


def test_class_order_matches_by_name_and_leaves_unnamed_heads_alone():
    from snl_video.engine.naming import class_order

    assert class_order(["a", "b", "c"], ["a", "b", "c"]) is None
    order = class_order(["b", "c", "a"], ["a", "b", "c"])
    assert order == [2, 0, 1]
    scores = np.array([[0.2, 0.3, 0.5]])  # outputs for b, c, a
    assert dict(zip(["a", "b", "c"], scores[0, order])) == {"a": 0.5, "b": 0.2, "c": 0.3}
    assert class_order(["class_0", "class_1"], ["a", "b"]) is None  # a head nobody named
    assert class_order(["a", "b"], ["0", "1"]) is None  # a dataset whose labels have no names
    assert class_order(["a", "b"], ["a", "x"], strict=False) is None  # a warning only
