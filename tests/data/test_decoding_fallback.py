"""Every backend delivers every frame PyAV decodes, at every clip position of a B-frame MPEG-4 AVI;
a backend that cannot falls back to PyAV for that video with a one-time warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from snl_video.data import decoding
from snl_video.data.decoding import BACKENDS, available_backends, decode_all, has_frame_reordering, read_frames
from snl_video.data.synthetic import encode_avi

from ..helpers import moving_frames

CLIP = 16
FRAMES = 28  # 13 clip positions, the last one ending on the last frame


@pytest.fixture(scope="module")
def bframe_avi(tmp_path_factory):
    """An XVID-tagged MPEG-4 Part 2 AVI from FFmpeg's encoder with B-frames (pts != dts), header = frames."""
    path = tmp_path_factory.mktemp("bframes") / "v_Bframes_g01_c01.avi"
    encode_avi(moving_frames(FRAMES, seed=7), path, gop_size=12, max_b_frames=2)
    return path


def _vop_type(packet: bytes) -> str:
    start = packet.find(b"\x00\x00\x01\xb6")
    return "IPBS"[packet[start + 4] >> 6]


def _not_coded_vop(time_increment_bits: int = 5) -> bytes:
    """An N-VOP (``vop_coded = 0``): the placeholder chunk XviD writes after a packed P+B chunk."""
    bits = "01" + "0" + "1" + "0" * time_increment_bits + "1" + "0"  # P, modulo_time_base, marker, time, marker, not coded
    bits += "0" + "1" * ((8 - (len(bits) + 1) % 8) % 8)  # next_start_code stuffing
    return b"\x00\x00\x01\xb6" + int(bits, 2).to_bytes(len(bits) // 8, "big")


def encode_packed_xvid_avi(frames, path) -> None:
    """An AVI laid out as XviD/DivX write "packed bitstream": each P-frame shares its chunk with
    the B-frame that follows it in decode order, the next chunk is an N-VOP, and the user data
    ``DivX503b1393p`` (the ``p``: packed) tells decoders so. One chunk per frame, no timestamps
    but the chunk index: the layout of many real UCF-101-era files. Made from the packets of
    FFmpeg's MPEG-4 Part 2 encoder (B-frames on), re-muxed without re-encoding."""
    import io
    from fractions import Fraction

    import av

    encoded = []
    with av.open(io.BytesIO(), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt, stream.bit_rate, stream.codec_tag = "yuv420p", 1_500_000, "XVID"
        stream.codec_context.gop_size, stream.codec_context.max_b_frames = 12, 1
        for array in [*frames, None]:
            frame = None if array is None else av.VideoFrame.from_ndarray(array.copy(), format="rgb24")
            encoded += [(bytes(p), bool(p.is_keyframe)) for p in stream.encode(frame)]
    chunks, i = [], 0
    while i < len(encoded):
        data, key = encoded[i]
        if i == 0:  # the user data goes after the VOL header, before the first VOP
            at = data.find(b"\x00\x00\x01\xb6")
            data = data[:at] + b"\x00\x00\x01\xb2DivX503b1393p" + data[at:]
        if i + 1 < len(encoded) and _vop_type(encoded[i + 1][0]) == "B" and _vop_type(data) != "B":
            chunks += [(data + encoded[i + 1][0], key), (_not_coded_vop(), False)]
            i += 2
        else:
            chunks.append((data, key))
            i += 1
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt, stream.codec_tag = "yuv420p", "XVID"
        for k, (data, key) in enumerate(chunks):
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, k, k, Fraction(1, 25)
            packet.is_keyframe = key
            container.mux(packet)


@pytest.fixture(scope="module")
def packed_avi(tmp_path_factory):
    frames = moving_frames(FRAMES, seed=9)
    path = tmp_path_factory.mktemp("packed") / "v_Packed_g01_c01.avi"
    encode_packed_xvid_avi(frames, path)
    return path, frames


@pytest.fixture(autouse=True)
def _fresh_fallback_state():
    decoding.forget_fallbacks()
    yield
    decoding.forget_fallbacks()


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


def test_the_packed_bitstream_file_decodes_in_order(packed_avi):
    path, frames = packed_avi
    decoded = decode_all(path)
    assert decoded.shape[0] == FRAMES == decoding.probe_video(path).declared_frames
    # each decoded frame is its own source frame (the frames differ strongly: a shifted one would not be close)
    err = np.abs(decoded.astype(np.int16) - frames.astype(np.int16)).mean(axis=(1, 2, 3))
    assert err.max() < 12, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_clip_position_of_a_packed_bitstream_avi_equals_pyav(packed_avi, backend):
    if backend not in available_backends():
        pytest.skip(f"{backend} is not installed here")
    path, _ = packed_avi
    reference = torch.from_numpy(decode_all(path))
    wrong = [start for start in range(FRAMES - CLIP + 1)
             if not torch.equal(read_frames(path, list(range(start, start + CLIP)), backend=backend),
                                reference[start:start + CLIP])]
    assert not wrong, f"{backend} returned other pixels for clips starting at {wrong}"


def test_a_failing_backend_falls_back_to_pyav_once_per_video_with_one_warning(bframe_avi, monkeypatch, caplog):
    calls = []

    def broken(path, wanted):
        calls.append(wanted)
        raise RuntimeError("Requested next frame while there are no more frames left to decode.")

    monkeypatch.setitem(decoding.READERS, "decord", broken)
    monkeypatch.setattr(decoding, "backend_importable", lambda backend: True)
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

    monkeypatch.setitem(decoding.READERS, "decord", short)
    monkeypatch.setattr(decoding, "backend_importable", lambda backend: True)
    with pytest.raises(decoding.DecodeError, match=f"decord failed.*sees {FRAMES} frames"):
        read_frames(bframe_avi, [FRAMES], backend="decord")
