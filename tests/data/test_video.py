"""Video files: one suffix list, one frame counter (also where the container declares no count),
one reader and one centre clip, shared by datasets, predict, explain, spectrum and features."""

from __future__ import annotations

import pytest
import torch

from snl_video.data.decoding import decode_all, probe_video, read_frames
from snl_video.data.sampling import center_clip
from snl_video.data.video import (
    VIDEO_SUFFIXES,
    count_entry_frames,
    count_frames,
    failure_reason,
    find_videos,
    read_centre_clip,
    read_entry_frames,
)

from ..helpers import write_random_video


@pytest.mark.parametrize("ext, codec", [(".mkv", "mpeg4"), (".webm", "libvpx"), (".avi", "mpeg4")])
def test_frame_count_equals_the_frames_decoded(tmp_path, ext, codec):
    path = tmp_path / f"v{ext}"
    write_random_video(path, num_frames=23, codec=codec, seed=23)
    decoded = len(decode_all(path))  # the reference: every frame, decoded
    assert count_frames(path) == decoded == 23
    if ext in (".mkv", ".webm"):
        assert probe_video(path).declared_frames == 0  # the header says nothing: counted by decoding


def test_frame_count_follows_a_rewritten_file(tmp_path):
    path = tmp_path / "v.webm"
    write_random_video(path, num_frames=12, codec="libvpx", seed=12)
    assert count_frames(path) == 12
    write_random_video(path, num_frames=17, codec="libvpx", seed=17)  # same path, new content: the cache is keyed by size and mtime too
    assert count_frames(path) == 17


def test_a_file_with_no_frames_is_a_decode_error(tmp_path):
    from snl_video.data.decoding import DecodeError

    bad = tmp_path / "empty.webm"
    bad.write_bytes(b"")
    with pytest.raises(DecodeError):
        count_frames(bad)


def test_centre_clip_and_entry_reader(tmp_path):
    from snl_video.data.datasets import VideoEntry

    path = tmp_path / "v.webm"
    write_random_video(path, num_frames=20, codec="libvpx", seed=20)
    clip = read_centre_clip(path, num_frames=6, sampling_stride=2)
    indices = center_clip(20, num_frames=6, stride=2)[0]
    assert torch.equal(clip, read_frames(path, indices))
    entry = VideoEntry(str(path), 0)
    assert count_entry_frames(entry) == 20
    assert torch.equal(read_entry_frames(entry, indices), clip)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_centre_clip(tmp_path / "gone.mp4", num_frames=4)


def test_a_dataset_of_video_files_takes_containers_without_a_count(tmp_path):
    # the video_file_dataset reader: before, a container without a declared count was an error
    import functools

    from snl_video.data.datasets import ClipDataset, VideoEntry

    path = tmp_path / "v.mkv"
    frames = write_random_video(path, num_frames=20, codec="mpeg4", seed=20)
    ds = ClipDataset([VideoEntry(str(path), 0)], functools.partial(read_entry_frames, backend=None), mode="clip",
                     num_frames=4, stride=1, count_frames=count_entry_frames)
    clip = ds[0]["clip"]
    indices = center_clip(20, num_frames=4, stride=1)[0]
    assert clip.shape == (4, 48, 64, 3) and len(frames) == 20
    assert torch.equal(clip, torch.from_numpy(decode_all(path)[indices]))


def test_one_suffix_list(tmp_path):
    from snl_video.data import sources
    from snl_video.engine import preflight

    assert sources.VIDEO_EXTENSIONS is VIDEO_SUFFIXES and preflight.VIDEO_SUFFIXES is VIDEO_SUFFIXES
    (tmp_path / "a").mkdir()
    for name in ("a/x.MKV", "a/y.webm", "a/notes.txt", "z.mp4"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_videos(tmp_path)] == ["x.MKV", "y.webm", "z.mp4"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no videos"):
        find_videos(tmp_path / "empty")


def test_a_video_named_twice_is_found_once_in_first_order(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("d/a.mp4", "d/b.mp4", "c.mp4"):
        (tmp_path / name).write_bytes(b"")
    found = find_videos([tmp_path / "d" / "b.mp4", tmp_path / "c.mp4", tmp_path / "d",
                         tmp_path / "d" / ".." / "c.mp4"])
    assert found == [tmp_path / "d" / "b.mp4", tmp_path / "c.mp4", tmp_path / "d" / "a.mp4"]


def test_failure_reason_is_one_line_without_the_path(tmp_path):
    empty = tmp_path / "e.avi"
    empty.write_bytes(b"")
    assert failure_reason(OSError("anything"), empty) == "empty file (0 bytes)"
    other = tmp_path / "o.avi"
    other.write_bytes(b"x")
    assert failure_reason(ValueError(f"{other}: bad header\nmore"), other) == "bad header"


def test_a_file_ffmpeg_cannot_open_is_said_so_without_its_errno(tmp_path):
    """The real error of a non-video file and of an MP4 cut before its header (PyAV's
    ``[Errno 1094995529] Invalid data found when processing input: '<path>'``)."""
    from snl_video.data.decoding import DecodeError

    text = tmp_path / "notes.avi"
    text.write_text("hello")
    cut = tmp_path / "cut.mp4"
    write_random_video(tmp_path / "whole.mp4", num_frames=8, height=32, width=32)
    data = (tmp_path / "whole.mp4").read_bytes()
    cut.write_bytes(data[: len(data) // 3])  # the moov atom (at the end) is lost
    for path in (text, cut):
        with pytest.raises(DecodeError) as caught:
            probe_video(path)
        assert "1094995529" in str(caught.value)  # what the decoder says
        reason = failure_reason(caught.value, path)
        assert reason.startswith("not a video FFmpeg can open") and str(path) not in reason and "Errno" not in reason
