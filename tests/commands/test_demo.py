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
