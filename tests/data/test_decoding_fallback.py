"""Every backend delivers every frame PyAV decodes, at every clip position of a B-frame MPEG-4 AVI;
a backend that cannot falls back to PyAV for that video with a one-time warning (issue 15, item 9)."""

from __future__ import annotations

import logging

import pytest
import torch

from snl_video.data import decoding
from snl_video.data.decoding import BACKENDS, available_backends, decode_all, has_frame_reordering, read_frames
from snl_video.data.synthetic import encode_avi

from .conftest import moving_frames

CLIP = 16
FRAMES = 28  # 13 clip positions, the last one ending on the last frame


@pytest.fixture(scope="module")
def bframe_avi(tmp_path_factory):
    """An XVID-tagged MPEG-4 Part 2 AVI from FFmpeg's encoder with B-frames (pts != dts), header = frames."""
    path = tmp_path_factory.mktemp("bframes") / "v_Bframes_g01_c01.avi"
    encode_avi(moving_frames(FRAMES, seed=7), path, gop_size=12, max_b_frames=2)
    return path


@pytest.fixture(autouse=True)
def _fresh_fallback_state(monkeypatch):
    monkeypatch.setattr(decoding, "_FALLBACKS", {})
    monkeypatch.setattr(decoding, "_WARNED_FALLBACK", set())


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_clip_position_up_to_the_last_frame_equals_pyav(bframe_avi, backend):
    if backend not in available_backends():
        pytest.skip(f"{backend} is not installed here")
    assert has_frame_reordering(bframe_avi)  # the trap this file is for: B-frames
    reference = torch.from_numpy(decode_all(bframe_avi))
    assert reference.shape[0] == FRAMES == decoding.probe_video(bframe_avi).declared_frames
    wrong = []
    for start in range(FRAMES - CLIP + 1):
        indices = list(range(start, start + CLIP))
        got = read_frames(bframe_avi, indices, backend=backend)  # old torchcodec: DecodeError at the last start
        if not torch.equal(got, reference[indices]):
            wrong.append(start)
    assert not wrong, f"{backend} returned other pixels for clips starting at {wrong}"


def test_a_failing_backend_falls_back_to_pyav_once_per_video_with_one_warning(bframe_avi, monkeypatch, caplog):
    calls = []

    def broken(path, wanted):
        calls.append(wanted)
        raise RuntimeError("Requested next frame while there are no more frames left to decode.")

    monkeypatch.setitem(decoding._READERS, "decord", broken)
    monkeypatch.setattr(decoding, "_importable", lambda backend: True)
    reference = torch.from_numpy(decode_all(bframe_avi))
    with caplog.at_level(logging.WARNING, logger="snl_video.data.decoding"):
        first = read_frames(bframe_avi, list(range(12, 28)), backend="decord")
        second = read_frames(bframe_avi, [0, 27], backend="decord")
    assert torch.equal(first, reference[12:28]) and torch.equal(second, reference[[0, 27]])
    assert len(calls) == 1  # the second read went to PyAV directly
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "decord failed to decode frames 12..27" in warnings[0] and "read with PyAV" in warnings[0]


def test_past_the_end_is_still_an_error_with_the_backends_message(bframe_avi, monkeypatch):
    def short(path, wanted):
        raise IndexError(f"frame {wanted[-1]} requested but the backend sees {FRAMES} frames")

    monkeypatch.setitem(decoding._READERS, "decord", short)
    monkeypatch.setattr(decoding, "_importable", lambda backend: True)
    with pytest.raises(decoding.DecodeError, match=f"decord failed.*sees {FRAMES} frames"):
        read_frames(bframe_avi, [FRAMES], backend="decord")
