from __future__ import annotations

import hashlib
import re

import av
import numpy as np

from snl_video.cli import main
from snl_video.data.synthetic import make_synthetic_ucf101, motion_classes, render_video


def test_official_names_and_video_format(synthetic_tree):
    videos = sorted((synthetic_tree / "UCF-101").rglob("*.avi"))
    assert len(videos) == 12
    for path in videos:
        assert re.fullmatch(rf"v_{path.parent.name}_g\d\d_c\d\d\.avi", path.name)
    with av.open(str(videos[0])) as container:
        stream = container.streams.video[0]
        assert container.format.name == "avi" and stream.codec_context.name == "mpeg4"
        assert (stream.codec_context.width, stream.codec_context.height, float(stream.average_rate)) == (320, 240, 25.0)
        assert 20 <= stream.frames <= 26


def test_classes_differ_only_in_motion():
    move_right, move_left = motion_classes()[0], motion_classes()[1]
    a = render_video(move_right, 12, np.random.default_rng(5))
    b = render_video(move_left, 12, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0])  # same scene at t=0 ...
    assert not np.array_equal(a[6], b[6])  # ... diverging only through motion
    # same pixels, moved: the bright square (>= 150 in every channel, background < 110) is
    # a 40x40 block in both frames, at different places
    square = [(a[t] >= 150).all(-1) for t in (0, 6)]
    assert square[0].sum() == square[1].sum() == 40 * 40 and not np.array_equal(*square)


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_given_the_seed(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        make_synthetic_ucf101(tmp_path / name, num_classes=2, videos_per_class=2, video_frames=8, frame_jitter=0,
                              seed=seed, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_cli(tmp_path):
    assert main(["make-synthetic", "ucf101", "--out", str(tmp_path), "--classes", "2", "--videos-per-class", "3",
                 "--frames", "8", "--no-progress"]) == 0
    assert (tmp_path / "ucfTrainTestlist" / "classInd.txt").read_bytes() == b"1 MoveRight\r\n2 MoveLeft\r\n"
    assert main(["make-synthetic", "ucf101", "--out", str(tmp_path), "--classes", "999"]) == 2
