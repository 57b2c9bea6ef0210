"""Evaluation: protocol outputs, the CLI verbs, and multi-process gloo DDP giving exactly the 1-process metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snl_video.cli import main
from snl_video.config import save_config
from snl_video.engine.builders import build_model_from_config
from snl_video.engine.checkpoint import save_checkpoint
from snl_video.engine.evaluate import run_evaluation

from ..helpers import NUM_CLASSES, tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def untrained_run(tiny_prepared, tmp_path):
    """A config file and a checkpoint of a randomly initialised model (its head is random, not zero)."""
    cfg = tiny_config(tiny_prepared, tmp_path / "run", eval={"num_clips": 2, "num_crops": 3, "batch_size": 6})
    torch.manual_seed(1)
    model = build_model_from_config(cfg)
    torch.nn.init.normal_(model.fc.weight, std=1.0)
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 0}, tmp_path / "ckpt.pt")
    return save_config(cfg, tmp_path / "config.yaml"), ckpt, cfg


def test_eval_counts_every_test_video_once_with_all_views(untrained_run, tmp_path):
    config_file, ckpt, cfg = untrained_run
    report = run_evaluation(cfg, ckpt, out_dir=tmp_path / "eval")
    index = __import__("pandas").read_csv(Path(cfg.data.root) / "index.csv")
    num_test = int((index["subset_1"] == "test").sum())
    assert report.num_clips == num_test and report.num_videos == num_test
    assert set(report.videos.num_views.tolist()) == {2 * 3}  # 2 clips x 3 crops
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_classes"] == NUM_CLASSES and "centre" in metrics["clip_protocol"]
    rows = (tmp_path / "eval" / "predictions.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + num_test


def test_eval_cli(untrained_run, tmp_path, capsys):
    config_file, ckpt, _ = untrained_run
    assert main(["eval", "--config", str(config_file), "--checkpoint", str(ckpt), "--out", str(tmp_path / "e")]) == 0
    assert json.loads(capsys.readouterr().out.split("outputs:")[0])["num_classes"] == NUM_CLASSES
    assert main(["eval", "--config", str(config_file), "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("nproc", [2, 3])
def test_multi_process_gloo_eval_equals_one_process(untrained_run, tmp_path, nproc):
    config_file, ckpt, cfg = untrained_run
    one = run_evaluation(cfg, ckpt, out_dir=tmp_path / "one")
    num_test = one.num_clips
    if nproc == 3:
        # 3 ranks over a count not divisible by 3: DistributedSampler pads with repeats,
        # which must not count.
        assert num_test % 3 != 0, "the test needs the sampler to pad"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "snl_video.cli", "eval", "--config", str(config_file), "--checkpoint", str(ckpt),
           "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())
    b = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert b.pop("world_size") == nproc and a.pop("world_size") == 1
    assert a == b
    pa = (tmp_path / "one" / "predictions.csv").read_text()
    pb = (tmp_path / "two" / "predictions.csv").read_text()
    assert pa == pb
    assert np.array_equal(np.loadtxt(tmp_path / "one" / "confusion_matrix.csv", delimiter=",", skiprows=1, usecols=range(1, NUM_CLASSES + 1)),
                          np.loadtxt(tmp_path / "two" / "confusion_matrix.csv", delimiter=",", skiprows=1, usecols=range(1, NUM_CLASSES + 1)))


def test_eval_feeds_the_normalisation_the_checkpoint_was_trained_with(tiny_prepared, tmp_path):
    """`eval --config RECIPE` whose recipe resolves another mean/std (its pretrained file is not
    on this machine, or a data.mean override at training time) scores the network on the
    inputs it was trained on: the same predictions as with the training recipe."""
    import dataclasses

    import pandas as pd

    from snl_video.engine.checkpoint import checkpoint_metadata

    trained = tiny_config(tiny_prepared, tmp_path / "run", data={"mean": [0.2, 0.3, 0.4], "std": [0.1, 0.2, 0.3]})
    torch.manual_seed(1)
    model = build_model_from_config(trained)
    torch.nn.init.normal_(model.fc.weight, std=1.0)
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(trained, class_names=None)},
                           tmp_path / "c.pt")
    run_evaluation(trained, ckpt, out_dir=tmp_path / "trained")
    other = dataclasses.replace(trained, data=dataclasses.replace(trained.data, mean=(0.45,) * 3, std=(0.225,) * 3))
    run_evaluation(other, ckpt, out_dir=tmp_path / "other")
    a = pd.read_csv(tmp_path / "trained" / "predictions.csv")
    b = pd.read_csv(tmp_path / "other" / "predictions.csv")
    np.testing.assert_allclose(b["prob_label"], a["prob_label"], atol=1e-6)  # old: differed by up to 0.19
    assert (a["predicted"] == b["predicted"]).all()


def test_eval_on_other_data_does_not_replace_the_runs_own_evaluation(tiny_prepared, tmp_path):
    """The run's eval/ is what compare and study read as its result: an evaluation on another
    prepared folder (or one allowed to score training videos) must go elsewhere."""
    import dataclasses

    from snl_video.engine.checkpoint import checkpoint_metadata
    from snl_video.errors import InvalidValueError

    cfg = tiny_config(tiny_prepared, tmp_path / "run")
    model = build_model_from_config(cfg)
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(cfg, class_names=None)},
                           tmp_path / "c.pt")
    other = tmp_path / "other prepared"  # the same videos, prepared into another folder
    other.mkdir()
    os.symlink(tiny_prepared / "videos", other / "videos")
    for name in ("classes.json", "settings.json", "index.csv", "dataset.json"):
        if (tiny_prepared / name).exists():
            (other / name).write_bytes((tiny_prepared / name).read_bytes())
    elsewhere = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(other)))
    with pytest.raises(InvalidValueError, match=r"other data than its run's \(data.root .*--output-dir"):
        run_evaluation(elsewhere, ckpt)
    assert not (tmp_path / "run" / "eval").exists()
    report = run_evaluation(elsewhere, ckpt, out_dir=tmp_path / "other eval")  # named: fine
    assert (tmp_path / "other eval" / "metrics.json").is_file() and report.num_videos > 0
    run_evaluation(cfg, ckpt)  # its own data: into the run's folder, as before
    assert (tmp_path / "run" / "eval" / "metrics.json").is_file()
