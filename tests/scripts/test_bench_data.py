"""scripts/bench_data.py on a tree with a damaged video: it measures the rest, skipping what prepare reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from snl_video.data.synthetic import make_synthetic_ucf101
from snl_video.data.ucf101 import read_split

ROOT = Path(__file__).resolve().parents[2]


def test_bench_data_skips_the_videos_prepare_reported(tmp_path):
    source = make_synthetic_ucf101(tmp_path / "src", num_classes=2, videos_per_class=4, video_frames=24,
                                   frame_jitter=0, progress=False)
    train = read_split(source / "ucfTrainTestlist", 1)
    train = train[train["subset"] == "train"]
    broken = train["path"].iloc[0]
    avi = source / "UCF-101" / broken
    avi.write_bytes(avi.read_bytes()[:600])  # a truncated AVI: prepare reports it, every row must leave it out
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_data.py"), "--videos", str(source / "UCF-101"),
         "--splits", str(source / "ucfTrainTestlist"), "--work", str(tmp_path / "work"), "--items", "2",
         "--seconds", "0.05", "--rounds", "2"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{len(train) - 1} (split-1 train list; 1 skipped as prepare reported)" in run.stdout
    assert f"left out of every row: {broken}" in run.stderr
    rows = {r["source"]: r for r in json.loads((tmp_path / "work" / "bench_data.json").read_text())["rows"]}
    for name in ("prepared .npy (ours)", "prepared .jpegs q90 (ours)", "pyav on AVI"):
        assert rows[name]["clips_per_s"] > 0, rows[name]
