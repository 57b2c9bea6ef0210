"""A checkpoint records the videos it was trained on; eval refuses a test subset holding any
of them, and compare says when runs were trained on different videos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from snl_video.cli import main
from snl_video.data.synthetic import make_synthetic_folder
from snl_video.engine.checkpoint import load_training_checkpoint
from snl_video.engine.records import check_same_dataset, dataset_fingerprint
from snl_video.engine.train import train

from ..helpers import tiny_config


@pytest.fixture(scope="module")
def two_splits(tmp_path_factory) -> tuple[Path, Path]:
    """The same 16 videos prepared twice: 25 % and 50 % test (another draw)."""
    root = tmp_path_factory.mktemp("resplit")
    videos = make_synthetic_folder(root / "raw", num_classes=2, videos_per_class=8, clips_per_group=1, video_frames=8,
                                   frame_jitter=0, progress=False)
    outs = []
    for name, fraction in (("a", "0.25"), ("b", "0.5")):
        out = root / name
        assert main(["prepare", "folder", "--videos", str(videos), "--test-fraction", fraction, "--seed", "3",
                     "--out", str(out), "--short-side", "48", "--clip-len", "6", "--no-progress"]) == 0
        outs.append(out)
    return outs[0], outs[1]


def _subset(root: Path, subset: str) -> set[str]:
    index = pd.read_csv(root / "index.csv", keep_default_na=False)
    return set(index.loc[index["subset_1"] == subset, "path"])


def _train(data_root: Path, out: Path) -> Path:
    cfg = tiny_config(data_root, out, data={"dataset": "folder", "batch_size": 16}, schedule={"epochs": 1},
                      runtime={"deterministic": False}, model={"num_classes": 2})  # the 2 classes the data has
    return train(cfg).last_checkpoint


@pytest.fixture(scope="module")
def runs(two_splits, tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    return _train(two_splits[0], base / "run_a").parent.parent, _train(two_splits[1], base / "run_b").parent.parent


def test_the_checkpoint_and_the_run_folder_record_the_training_videos(two_splits, runs):
    a, _ = two_splits
    state = load_training_checkpoint(runs[0] / "checkpoints" / "last.pt")
    expected = dataset_fingerprint(sorted(_subset(a, "train")))
    assert state["train_videos"] == expected and expected["count"] == len(_subset(a, "train"))
    record = json.loads((runs[0] / "train_videos.json").read_text())
    assert record["sha256"] == expected["sha256"] and record["count"] == expected["count"]


def test_eval_on_a_resplit_test_subset_holding_training_videos_is_an_error_naming_how_many(two_splits, runs, tmp_path,
                                                                                           capsys):
    a, b = two_splits
    shared = _subset(a, "train") & _subset(b, "test")
    assert shared  # the re-split puts some of run a's training videos into b's test subset
    ckpt = runs[0] / "checkpoints" / "last.pt"
    out = tmp_path / "eval"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ckpt), f"data.root={b}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{len(shared)} of the {len(_subset(b, 'test'))} test videos" in err and "--allow-train-overlap" in err
    assert not out.exists()  # nothing written
    assert main(["eval", "--checkpoint", str(ckpt), f"data.root={b}", "--out", str(out), "--allow-train-overlap"]) == 0
    assert (out / "metrics.json").is_file()
    assert main(["eval", "--checkpoint", str(ckpt), "--out", str(tmp_path / "own")]) == 0  # its own split: fine


def test_compare_says_when_runs_were_trained_on_different_videos(runs, tmp_path, capsys, caplog):
    assert check_same_dataset([runs[0], runs[0]]) == []
    (line,) = check_same_dataset(list(runs))
    assert "trained on 2 different sets of videos" in line and str(runs[0]) in line and str(runs[1]) in line
    for run in runs:  # each on its own split
        assert main(["eval", "--checkpoint", str(run / "checkpoints" / "last.pt")]) == 0
    capsys.readouterr()
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "cmp"), "--no-profile",
                 "--no-curves"]) == 0
    captured = capsys.readouterr()
    assert "WARNING: runs of split 1 were trained on 2 different sets of videos" in captured.out
    # said once: printed with the notes, not logged as well
    said = captured.out + captured.err + caplog.text
    assert said.count("were trained on 2 different sets of videos") == 1, said
    assert "different sets of videos" in (tmp_path / "cmp" / "table.md").read_text()


def test_eval_weights_with_a_head_trained_on_test_videos_is_refused_as_eval_checkpoint_is(two_splits, runs, tmp_path,
                                                                                          capsys):
    """``eval --weights W --head-from CKPT``: the head's training videos are checked against the
    test subset with the same message as ``eval --checkpoint``."""
    a, b = two_splits
    shared = _subset(a, "train") & _subset(b, "test")
    ckpt = runs[0] / "checkpoints" / "last.pt"
    recipe = runs[0] / "config.yaml"
    out = tmp_path / "w"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ckpt), f"data.root={b}", "--out", str(tmp_path / "c")]) == 2
    via_checkpoint = capsys.readouterr().err.strip().split("error: ", 1)[1]
    assert main(["eval", "--config", str(recipe), "--weights", str(ckpt), "--head-from", str(ckpt), f"data.root={b}",
                 "--out", str(out)]) == 2
    via_head = capsys.readouterr().err.strip().split("error: ", 1)[1]
    assert f"{len(shared)} of the {len(_subset(b, 'test'))} test videos" in via_head
    assert via_head == via_checkpoint  # the same message, naming the same checkpoint
    assert not (out / "metrics.json").exists()
    assert main(["eval", "--config", str(recipe), "--weights", str(ckpt), "--head-from", str(ckpt), f"data.root={b}",
                 "--out", str(out), "--allow-train-overlap"]) == 0
    assert (out / "metrics.json").is_file()
    assert main(["eval", "--config", str(recipe), "--weights", str(ckpt), "--head-from", str(ckpt),
                 "--out", str(tmp_path / "own")]) == 0  # its own split: fine


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_on_a_dataset_re_split_since_the_run_started_is_refused_in_one_line(two_splits, tmp_path, capsys):
    """The data re-prepared in place with another --test-fraction between a run's start and its
    ``--resume``: refused before anything is written, naming both training sets and what to do."""
    a, b = two_splits
    data = tmp_path / "data"
    shutil.copytree(a, data)
    run = _train(data, tmp_path / "run").parent.parent
    shutil.rmtree(data)
    shutil.copytree(b, data)  # the same videos, re-split (25 % -> 50 % test) under the same data.root
    before = _files(run)
    capsys.readouterr()
    assert main(["train", "--config", str(run / "config.yaml"), "--resume", "schedule.epochs=2"]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert line.startswith("snl-video train: error: --resume: the training set of") and "changed since" in line
    assert f"{len(_subset(a, 'train'))} videos" in line and f"{len(_subset(b, 'train'))} videos" in line
    assert "start a new run" in line and "re-prepare" in line
    assert _files(run) == before  # nothing written
    shutil.rmtree(data)
    shutil.copytree(a, data)  # the split it started on: the run goes on
    assert main(["train", "--config", str(run / "config.yaml"), "--resume", "schedule.epochs=2"]) == 0
