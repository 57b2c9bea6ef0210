"""Model selection on a validation set carved from the training list (data.val_fraction), recorded everywhere."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from snl_video.engine.compare import collect_row
from snl_video.engine.checkpoint import BEST, LAST, load_checkpoint
from snl_video.engine.evaluate import run_evaluation
from snl_video.engine.train import read_history, train

from ..helpers import tiny_config


def _epochs(run):
    return [h for h in read_history(run) if h["kind"] == "epoch"]


def test_val_fraction_selects_on_held_out_training_groups_and_eval_reports_test(tiny_prepared, tmp_path):
    run = tmp_path / "val"
    cfg = tiny_config(tiny_prepared, run, schedule={"epochs": 2}, data={"val_fraction": 0.25},
                      eval={"every_epochs": 1})
    result = train(cfg)
    index = pd.read_csv(tiny_prepared / "index.csv", keep_default_na=False)
    n_train_list = int((index["subset_1"] == "train").sum())
    n_test = int((index["subset_1"] == "test").sum())
    epochs = _epochs(run)
    assert [e["selection_subset"] for e in epochs] == ["val", "val"]
    n_val = epochs[0]["selection_videos"]
    # a quarter of each class's training videos, taken in whole groups: at least 25 %, not the test split's size
    assert n_train_list * 0.25 <= n_val < n_train_list * 0.6 and n_val != n_test
    for name in (LAST, BEST):
        state = load_checkpoint(run / "checkpoints" / name)
        assert state["selection_subset"] == "val" and state["selection_videos"] == n_val
    # the final evaluation is on the test split
    report = run_evaluation(cfg, result.last_checkpoint)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["subset"] == "test" and metrics["num_videos"] == n_test == report.num_clips
    assert collect_row(run, profile=False).selection == f"val ({n_val})"


def test_without_val_fraction_the_run_records_selection_on_test(tiny_prepared, tmp_path, caplog):
    run = tmp_path / "test"
    cfg = tiny_config(tiny_prepared, run, schedule={"epochs": 1}, eval={"every_epochs": 1})
    with caplog.at_level("WARNING"):
        train(cfg)
    index = pd.read_csv(tiny_prepared / "index.csv", keep_default_na=False)
    n_test = int((index["subset_1"] == "test").sum())
    (epoch,) = _epochs(run)
    assert epoch["selection_subset"] == "test" and epoch["selection_videos"] == n_test
    assert load_checkpoint(run / "checkpoints" / LAST)["selection_subset"] == "test"
    assert any("model selection (periodic evaluation, best.pt) uses the TEST split" in r.message for r in caplog.records)
    run_evaluation(cfg, run / "checkpoints" / LAST)
    assert collect_row(run, profile=False).selection == f"test ({n_test})"


def test_a_folder_source_trains_selects_on_its_own_val_subset_and_evaluates_on_test(tmp_path):
    from snl_video.cli import main
    from snl_video.data.synthetic import make_synthetic_folder

    videos = make_synthetic_folder(tmp_path / "raw", num_classes=2, videos_per_class=8, clips_per_group=2,
                                   video_frames=12, frame_jitter=0, progress=False)
    prepared = tmp_path / "prepared"
    assert main(["prepare", "folder", "--videos", str(videos), "--group-regex", "_g([0-9]+)_", "--test-fraction",
                 "0.25", "--val-fraction", "0.25", "--split-name", "a", "--out", str(prepared), "--short-side", "48",
                 "--clip-len", "6", "--no-progress"]) == 0
    run = tmp_path / "run"
    cfg = tiny_config(prepared, run, model={"num_classes": 2}, schedule={"epochs": 1}, eval={"every_epochs": 1},
                      data={"dataset": "folder", "split": "a"})
    train(cfg)
    (epoch,) = _epochs(run)
    assert epoch["selection_subset"] == "val" and epoch["selection_videos"] == 4  # one group of 2 per class
    report = run_evaluation(cfg, run / "checkpoints" / LAST)
    assert report.num_clips == 4 and json.loads((run / "eval" / "metrics.json").read_text())["dataset"] == "folder"
    # the same recipe pointed at the folder directory but naming another source is refused
    wrong = tiny_config(prepared, tmp_path / "wrong", model={"num_classes": 2}, data={"dataset": "list", "split": "a"})
    with pytest.raises(ValueError, match="holds a prepared 'folder' dataset but the recipe names data.dataset='list'"):
        train(wrong)
