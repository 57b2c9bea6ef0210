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


def test_runs_of_different_models_may_have_their_own_clip_but_not_their_own_views(tmp_path, capsys):
    """A new family beside Table 7's rows (its own clip and size) is compared; the same model at
    another size, or another model under other views per video, is refused as before."""
    a = _run(tmp_path, "a", clips=1, crops=1, videos=3783, epoch=100, data_root=tmp_path)

    def other(name, model, crop, clips=1):
        cfg = tiny_config(tmp_path, tmp_path / name, name=name, nonlocal_blocks=None,
                          model={"name": model, "num_classes": 4, "options": {"widen_factor": 0.25}},
                          data={"crop_size": crop})
        (tmp_path / name / "eval").mkdir(parents=True)
        save_config(cfg, tmp_path / name / "config.yaml")
        (tmp_path / name / "eval" / "metrics.json").write_text(json.dumps(
            {"clip_top1": 60.0, "clip_top5": 95.0, "video_top1": 61.0, "video_top5": 96.0, "num_videos": 3783,
             "epoch": 40, "eval_num_clips": clips, "eval_num_crops": 1, "num_frames": 6, "sampling_stride": 2,
             "crop_size": crop}))
        return tmp_path / name

    family = other("family", "r3d18", 64)
    assert main(["compare", str(a), str(family), "--out", str(tmp_path / "cmp"), "--no-profile", "--no-curves"]) == 0
    rows = _table(tmp_path / "cmp" / "table.csv")
    assert [(r["model"], r["protocol"]) for r in rows] == [("r3d10", "1 clip x 1 crop 6f/2 @40"),
                                                           ("r3d18", "1 clip x 1 crop 6f/2 @64")]
    assert "fed their own clips" in (tmp_path / "cmp" / "table.md").read_text()
    same_model = other("bigger", "r3d10", 64)
    assert main(["compare", str(a), str(same_model), "--out", str(tmp_path / "cmp2"), "--no-profile"]) == 2
    assert "different protocols" in capsys.readouterr().err
    other_views = other("views", "r3d18", 64, clips=10)
    assert main(["compare", str(a), str(other_views), "--out", str(tmp_path / "cmp3"), "--level", "video",
                 "--no-profile"]) == 2
    assert "different protocols" in capsys.readouterr().err
