"""Progress (:mod:`snl_video.progress`): a tqdm bar on a terminal, plain log lines at most every
30 s otherwise; long data jobs (make-synthetic, prepare) redirected to a log file write those
lines, not tqdm's carriage-return fragments (pytest's captured stderr is not a terminal)."""

from __future__ import annotations

import io
import logging

from snl_video.data.prepare import prepare_ucf101
from snl_video.data.synthetic import make_synthetic_ucf101
from snl_video.progress import PlainProgress, progress


def test_make_synthetic_and_prepare_log_plain_lines_off_a_terminal(tmp_path, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="snl_video.progress"):
        tree = make_synthetic_ucf101(tmp_path / "syn", num_classes=2, videos_per_class=2, video_frames=8,
                                     frame_jitter=0, progress=True)
        prepare_ucf101(tree / "UCF-101", tree / "ucfTrainTestlist", tmp_path / "out", splits=[1], progress=True)
    err = capfd.readouterr().err
    assert "\r" not in err  # no tqdm bar fragments
    lines = [r.getMessage() for r in caplog.records if r.name == "snl_video.progress"]
    assert any(line.startswith("synthetic videos: 4/4 videos (100%)") for line in lines), lines
    assert any(line.startswith("prepare: 4/4 videos (100%)") for line in lines), lines


def test_plain_progress_plural_of_batch():
    bar = PlainProgress(range(2), total=2, desc="eval clips", unit="batch")
    list(bar)
    assert bar.line(1.0) == "eval clips: 2/2 batches (100%), 1.0 s, 2 batches/s"


class _Clock:
    def __init__(self, times):
        self.times = iter(times)

    def __call__(self):
        return next(self.times)


def test_plain_progress_logs_at_most_every_30_s_and_at_the_end(caplog):
    # start at 0; items end at 10, 29, 31, 50, 62, 70; the end line at 71
    clock = _Clock([0.0, 10.0, 29.0, 31.0, 50.0, 62.0, 70.0, 71.0])
    bar = PlainProgress(range(6), total=6, desc="epoch 1/2", unit="step", clock=clock)
    with caplog.at_level(logging.INFO, logger="snl_video.progress"):
        for i in bar:
            bar.set_postfix(loss=f"{1.0 / (i + 1):.3f}")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "epoch 1/2: 3/6 steps (50%), 31.0 s, 0.0968 steps/s, loss=0.333",
        "epoch 1/2: 5/6 steps (83%), 62.0 s, 0.0806 steps/s, loss=0.200",
        "epoch 1/2: 6/6 steps (100%), 71.0 s, 0.0845 steps/s, loss=0.167",
    ]


def test_progress_is_a_bar_only_on_a_terminal():
    from tqdm import tqdm

    class Tty(io.StringIO):
        def isatty(self):
            return True

    bar = progress(range(3), enabled=True, desc="x", stream=Tty())
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(progress(range(3), enabled=True, desc="x", stream=io.StringIO()), PlainProgress)
    assert list(progress(range(3), enabled=False, desc="x")) == [0, 1, 2]
