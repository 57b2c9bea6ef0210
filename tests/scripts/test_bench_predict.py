"""scripts/bench_predict.py's long-video rows and their same-machine before/after (``--before``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..helpers import write_random_video

ROOT = Path(__file__).resolve().parents[2]


def test_before_against_this_checkout_itself_scores_the_same_windows_bit_for_bit(tmp_path):
    """``--before ROOT`` runs scripts/timeline_once.py with this checkout twice: the same code, seed
    and thread count must give the same probabilities for the same windows as the timeline row
    counts; a broken window argument or a different model in the script would not."""
    footage = tmp_path / "footage.mp4"
    write_random_video(footage, num_frames=30, seed=2)
    out = tmp_path / "rows.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_predict.py"), "--long", "0.1", "--footage", str(footage),
         "--threads", "1", "--before", str(ROOT), "--json", str(out)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())
    (long,) = rows["long"]
    (before,) = rows["before"]
    assert long["windows"] == before["windows"] == 5  # 6 s at 25 fps, 2 s windows every 1 s
    assert before["max_dp"] == 0.0 and before["top1_agree"] == 1.0
    assert before["before_s"] > 0 and before["now_s"] > 0 and before["before_rss"] > 100


def test_before_refuses_a_folder_that_is_not_a_checkout(tmp_path):
    footage = tmp_path / "footage.mp4"
    write_random_video(footage, num_frames=4, seed=2)
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_predict.py"), "--long", "0.1", "--footage", str(footage),
         "--before", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert run.returncode != 0 and "not a checkout of this repository" in run.stderr
