"""predict's seconds follow the frames' timestamps: a container whose declared rate its frames
do not follow (a variable frame rate) is not said to end early, and its timeline covers it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import snl_video
from snl_video.data.decoding import probe_video, timestamp_rate

from ..helpers import moving_frames, write_random_video

#: Milliseconds between frames: 40 ms (25 fps) twice, then 120 ms, over and over.
GAPS_MS = [40, 40, 120] * 20


def _write_uneven(path: Path) -> float:
    """A Matroska video declaring 25 fps whose frames are spaced by ``GAPS_MS``; returns the
    time its frames span (first start to last end, the last lasting the median gap), in seconds."""
    import av

    frames = moving_frames(len(GAPS_MS) + 1, height=48, width=64)
    pts = np.concatenate([[0], np.cumsum(GAPS_MS)])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for frame_pts, image in zip(pts.tolist(), frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(frame_pts), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return (pts[-1] + np.median(GAPS_MS)) / 1000


def test_a_video_whose_frames_do_not_follow_its_declared_rate(tiny_snl_checkpoint, tmp_path):
    _, ckpt, _, _ = tiny_snl_checkpoint
    video = tmp_path / "uneven.mkv"
    duration = _write_uneven(video)
    assert probe_video(video).fps == pytest.approx(25.0)  # what the container says: frames / 25 would be 2.44 s
    rate = timestamp_rate(video)
    assert rate is not None and not rate.regular and rate.duration_s == pytest.approx(duration)
    (whole,) = snl_video.predict(video, checkpoint=ckpt, top_k=1).predictions
    assert whole.end_s == pytest.approx(duration, rel=1e-6)
    timeline = snl_video.predict(video, checkpoint=ckpt, top_k=1, window_seconds=1.0, stride_seconds=1.0)
    assert timeline.predictions[-1].end_s == pytest.approx(duration, abs=0.1)
    assert any("timestamps give" in n and "variable frame rate" in n for n in timeline.notes)


def test_a_constant_rate_video_keeps_its_declared_rate_and_says_nothing(tiny_snl_checkpoint, tmp_path):
    _, ckpt, _, _ = tiny_snl_checkpoint
    video = tmp_path / "even.mp4"
    write_random_video(video, num_frames=30, fps=25)
    rate = timestamp_rate(video)
    assert rate is not None and rate.regular and rate.fps == pytest.approx(25.0)
    result = snl_video.predict(video, checkpoint=ckpt, top_k=1, window_seconds=0.6, stride_seconds=0.6)
    assert not result.notes
    assert [round(p.end_s, 6) for p in result.predictions] == [0.6, 1.2]
