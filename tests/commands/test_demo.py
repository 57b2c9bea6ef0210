"""The whole `snl-video demo` (minutes on 2 cores): it must reach its own target and write its outputs."""

from __future__ import annotations

import json

import pytest

from snl_video.cli import main


@pytest.mark.slow
def test_demo_end_to_end_meets_its_target(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    assert summary["passed"] and summary["clip_top1"] >= 3 * summary["chance"]
    for name in ("metrics.json", "curves.png", "confusion_matrix.png", "predictions.csv", "demo.log"):
        assert (tmp_path / "demo" / name).is_file()
    assert (tmp_path / "demo" / "train" / "metrics.jsonl").is_file()


def test_demo_storage_flag_prepares_that_storage_and_a_rerun_with_the_other_rebuilds(tmp_path):
    """``--storage jpeg`` prepares the demo's clips as packed JPEGs (prepare's default) and says so
    in the summary; rerunning into the same folder with the default (npy) remakes the data rather
    than tripping prepare's refusal to mix storages. One epoch each: the target is not the point."""
    out = tmp_path / "demo"
    quick = ["schedule.epochs=1", "schedule.warmup_epochs=0", "eval.every_epochs=0"]
    for storage in ("jpeg", None):
        flags = ["--storage", storage] if storage else []
        main(["demo", "--out", str(out), *flags, *quick])  # exit 1 (target missed after 1 epoch) is fine here
        summary = json.loads((out / "demo_summary.json").read_text())
        settings = json.loads((out / "data" / "prepared" / "settings.json").read_text())
        assert summary["storage"] == settings["storage"] == (storage or "npy")
        assert set(summary["seconds"]) == {"prepare", "train", "evaluate"}
        frames = sorted(p.suffix for p in (out / "data" / "prepared").rglob("*") if p.suffix in (".npy", ".jpegs"))
        assert frames and set(frames) == {".npy" if storage is None else ".jpegs"}
