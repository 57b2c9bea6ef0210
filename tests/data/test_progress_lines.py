"""Long data jobs (make-synthetic, prepare) redirected to a log file write plain progress lines,
not tqdm's carriage-return fragments (pytest's captured stderr is not a terminal)."""

from __future__ import annotations

import logging

from snl_video.data.prepare import prepare_ucf101
from snl_video.data.synthetic import make_synthetic_ucf101
from snl_video.engine.progress import PlainProgress


def test_make_synthetic_and_prepare_log_plain_lines_off_a_terminal(tmp_path, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="snl_video.engine.progress"):
        tree = make_synthetic_ucf101(tmp_path / "syn", num_classes=2, videos_per_class=2, num_frames=8,
                                     frame_jitter=0, progress=True)
        prepare_ucf101(tree / "UCF-101", tree / "ucfTrainTestlist", tmp_path / "out", splits=[1], progress=True)
    err = capfd.readouterr().err
    assert "\r" not in err  # no tqdm bar fragments
    lines = [r.getMessage() for r in caplog.records if r.name == "snl_video.engine.progress"]
    assert any(line.startswith("synthetic videos: 4/4 videos (100%)") for line in lines), lines
    assert any(line.startswith("prepare: 4/4 videos (100%)") for line in lines), lines


def test_plain_progress_plural_of_batch():
    bar = PlainProgress(range(2), total=2, desc="eval clips", unit="batch")
    list(bar)
    assert bar.line(1.0) == "eval clips: 2/2 batches (100%), 1.0 s, 2 batches/s"
