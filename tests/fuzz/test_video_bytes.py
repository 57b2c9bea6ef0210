"""Fuzzing the decoder boundary (``snl_video.data.decoding``) with truncated and garbled videos.

Real files (MPEG-4 AVI as UCF-101 has, and H.264 MP4 when this PyAV can encode it) are cut at
any byte, have bytes flipped, get junk appended, or are replaced by arbitrary bytes; then
``probe_video``, ``read_frames`` (every installed backend, with PyAV as fallback) and
``decode_all`` read them. Property: frames of the requested shape, or ``DecodeError`` (the
project's one-line error); never a crash or another exception.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from snl_video.data.decoding import available_backends, decode_all, has_frame_reordering, probe_video, read_frames
from snl_video.data.synthetic import encode_avi

from .errors import fewer_examples, only_project_errors


def _mp4(frames: np.ndarray, path: Path) -> bool:
    import av

    try:
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    except Exception:  # noqa: BLE001 - no H.264 encoder in this PyAV build: AVI only
        return False
    return True


@functools.lru_cache(maxsize=1)
def originals() -> dict[str, bytes]:
    """The undamaged files, made once (a plain cached function, not a fixture: hypothesis would
    print a fixture's 40 kB of bytes with every failing example)."""
    frames = np.random.default_rng(0).integers(0, 255, (12, 16, 16, 3), dtype=np.uint8)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        encode_avi(frames, Path(tmp) / "v.avi", fps=10, gop_size=4, max_b_frames=2)
        out["avi"] = (Path(tmp) / "v.avi").read_bytes()
        if _mp4(frames, Path(tmp) / "v.mp4"):
            out["mp4"] = (Path(tmp) / "v.mp4").read_bytes()
    return out


@st.composite
def damage(draw) -> dict:
    return {
        "cut": draw(st.one_of(st.none(), st.floats(0.0, 1.0))),
        "flips": draw(st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), max_size=8)),
        "tail": draw(st.binary(max_size=16)),
        "replace": draw(st.one_of(st.none(), st.binary(max_size=64))),
    }


def _damaged(data: bytes, how: dict) -> bytes:
    if how["replace"] is not None:
        return how["replace"]
    buf = bytearray(data)
    for where, mask in how["flips"]:
        buf[int(where * len(buf))] ^= mask
    if how["cut"] is not None:
        buf = buf[: int(how["cut"] * len(buf))]
    return bytes(buf) + how["tail"]


@fewer_examples(0.8)
@given(how=damage(), container=st.sampled_from(["avi", "mp4"]), backend=st.sampled_from(available_backends()),
       indices=st.lists(st.integers(0, 15), min_size=1, max_size=4))
@example(how={"cut": None, "flips": [(0.998046875, 128)], "tail": b"", "replace": None}, container="mp4",
         backend="pyav", indices=[0])  # a garbled metadata tag: PyAV's UnicodeDecodeError escaped probe_video
@example(how={"cut": 0.8828125, "flips": [], "tail": b"", "replace": None}, container="mp4", backend="pyav",
         indices=[0])  # an MP4 cut before its codec parameters: probe_video met codec_context None
def test_damaged_videos(how, container, backend, indices):
    data = originals().get(container, originals()["avi"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip ü.{container}"
        path.write_bytes(_damaged(data, how))
        with only_project_errors():
            info = probe_video(path)
            assert info.width >= 0 and info.height >= 0
        with only_project_errors():
            frames = read_frames(path, indices, backend=backend)
            assert frames.shape[0] == len(indices) and frames.shape[-1] == 3
        with only_project_errors():
            assert decode_all(path).ndim == 4
        with only_project_errors():
            has_frame_reordering(path)
