"""``compare`` says what it compares: level, protocol, videos, epochs, split, head size; mixed protocols refused."""

from __future__ import annotations

import csv
import json

from snl_video.cli import main
from snl_video.config import save_config

from ..helpers import tiny_config


def _run(root, name, *, clips, crops, videos, epoch, data_root, nonlocal_blocks=None):
    cfg = tiny_config(data_root, root / name, name=name, nonlocal_blocks=nonlocal_blocks)
    (root / name / "eval").mkdir(parents=True)
    save_config(cfg, root / name / "config.yaml")
    metrics = {"clip_top1": 50.0, "clip_top5": 90.0, "video_top1": 55.0, "video_top5": 92.0, "num_videos": videos,
               "epoch": epoch, "eval_num_clips": clips, "eval_num_crops": crops, "num_frames": 6,
               "sampling_stride": 2, "crop_size": 40}
    (root / name / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return root / name


def _table(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_table_states_level_protocol_videos_epochs_split_and_head(tmp_path, capsys):
    a = _run(tmp_path, "a", clips=10, crops=3, videos=3783, epoch=100, data_root=tmp_path)
    b = _run(tmp_path, "b", clips=10, crops=3, videos=3783, epoch=90, data_root=tmp_path,
             nonlocal_blocks={"kind": "snl", "positions": {"layer3": [0]}})
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp"), "--level", "video", "--no-profile",
                 "--no-curves"]) == 0
    rows = _table(tmp_path / "cmp" / "table.csv")
    assert [(r["level"], r["protocol"], r["videos"], r["epochs"], r["split"], r["head"]) for r in rows] == [
        ("video", "10 clips x 3 crops 6f/2 @40", "3783", "100", "1", "4-class"),
        ("video", "10 clips x 3 crops 6f/2 @40", "3783", "90", "1", "4-class")]
    md = (tmp_path / "cmp" / "table.md").read_text()
    assert "video-level accuracy" in md and "400-class head" in md and "WARNING" not in md
    # the clip level is one centre clip whatever the video protocol
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp2"), "--no-profile", "--no-curves"]) == 0
    assert {r["protocol"] for r in _table(tmp_path / "cmp2" / "table.csv")} == {"1 clip x 1 crop 6f/2 @40"}


def test_mixed_protocols_are_refused_unless_allowed_and_then_flagged(tmp_path, capsys):
    a = _run(tmp_path, "a", clips=10, crops=3, videos=3783, epoch=100, data_root=tmp_path)
    b = _run(tmp_path, "b", clips=1, crops=1, videos=3700, epoch=100, data_root=tmp_path)
    args = ["compare", str(a), str(b), "--out", str(tmp_path / "cmp"), "--level", "video", "--no-profile", "--no-curves"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "different protocols" in err and "a: 10 clips x 3 crops" in err and "--allow-mixed" in err
    assert not (tmp_path / "cmp" / "table.md").exists()
    assert main(args + ["--allow-mixed"]) == 0
    md = (tmp_path / "cmp" / "table.md").read_text()
    assert "WARNING: the runs were evaluated under different protocols" in md
    assert "WARNING: the runs scored different numbers of test videos: a: 3783; b: 3700" in md
