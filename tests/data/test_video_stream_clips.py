"""One decoding pass: :func:`stream_clips` gives every clip exactly as the per-clip reader does
(each backend, with and without B-frames), yields a clip as soon as its last frame is
decoded, and keeps only the frames clips still to come need."""

from __future__ import annotations

import pytest
import torch

from snl_video.data import video as video_module
from snl_video.data.decoding import DecodeError, available_backends, read_frames
from snl_video.data.sampling import sliding_clips, uniform_clips
from snl_video.data.video import read_entry_clips, stream_clips


def _timeline_clips(video_frames: int, *, window: int, step: int, num_frames: int) -> list[list[int]]:
    """The clips predict's ``--window/--stride`` scores, window after window."""
    clips = []
    for start in range(0, video_frames - window + 1, step):
        clips += [[start + i for i in clip] for clip in sliding_clips(window, num_frames=num_frames, stride=1)]
    return clips


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name", ["ip", "ipb"])
def test_every_clip_equals_the_per_clip_reader(reference_videos, name, backend):
    path, _ = reference_videos[name]
    clips = _timeline_clips(50, window=12, step=5, num_frames=4)
    clips += uniform_clips(50, num_frames=8, stride=2, num_clips=3)  # out of order, strided, a far jump back
    clips += [[3, 3, 4, 3]]  # repeats, not increasing
    got = dict(stream_clips(path, clips, backend=backend))
    assert sorted(got) == list(range(len(clips)))
    for index, clip in enumerate(clips):
        # the per-clip reader of the same backend: what predict and eval read before
        assert torch.equal(got[index], read_frames(path, clip, backend=backend)), (index, clip)
    as_list = read_entry_clips(type("E", (), {"path": str(path)})(), clips, backend=backend)
    assert all(torch.equal(a, got[i]) for i, a in enumerate(as_list))


def test_one_decoding_pass_and_a_buffer_bounded_by_the_window(reference_videos, monkeypatch):
    path, _ = reference_videos["ipb"]
    decoded: list[int] = []
    converted: list[int] = []
    original = video_module.SEQUENTIAL_READERS["pyav"]

    def counting(p, stop):
        for index, convert in original(p, stop):
            decoded.append(index)
            yield index, (lambda c=convert, i=index: (converted.append(i), c())[1])

    monkeypatch.setitem(video_module.SEQUENTIAL_READERS, "pyav", counting)
    window = 10
    clips = _timeline_clips(50, window=window, step=3, num_frames=5)
    stream = stream_clips(path, clips, backend="pyav")
    seen = 0
    for index, frames in stream:
        # when a clip is yielded, no frame past its own last one has been decoded
        assert decoded[-1] == max(clips[index])
        # and the buffer holds at most the frames of one window (plus the clip being yielded)
        buffer = stream.gi_frame.f_locals["buffer"]
        assert len(buffer) <= window + 1
        seen += 1
    assert seen == len(clips)
    assert decoded == list(range(max(map(max, clips)) + 1))  # each frame decoded once, in order
    assert len(converted) == len(set(converted))


def test_a_clip_past_the_end_is_a_decode_error_after_the_clips_that_fit(reference_videos):
    path, _ = reference_videos["ip"]
    got = []
    with pytest.raises(DecodeError, match="fewer frames than requested"):
        for index, _ in stream_clips(path, [[0, 1], [48, 49], [49, 50]], backend="pyav"):
            got.append(index)
    assert got == [0, 1]


def test_bad_clips_are_refused(reference_videos):
    path, _ = reference_videos["ip"]
    with pytest.raises(ValueError, match="at least one"):
        list(stream_clips(path, [[]]))
    with pytest.raises(ValueError, match=">= 0"):
        list(stream_clips(path, [[-1, 0]]))
    assert list(stream_clips(path, [])) == []
