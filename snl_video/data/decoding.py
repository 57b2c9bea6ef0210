"""Video decoding behind one interface: :func:`read_frames` and :func:`available_backends`.

Convention at this boundary: frames are addressed by 0-based *index in decode order* (never
seconds), and come back as one ``uint8`` tensor ``(T, H, W, 3)`` in RGB, in the order the
indices were asked for (repeats allowed, so loop-padded clips cost nothing extra).

The reference is PyAV decoding the stream sequentially from the first packet: it has no
seeking, so it cannot land on the wrong frame. The other backends must return the same
frames (``tests/data/test_decoding.py`` checks this on generated MPEG-4 AVIs):

* ``pyav``: sequential decode up to the largest requested index (exact by construction).
* ``decord``: ``VideoReader.get_batch`` (seeks to the previous key frame, then decodes).
* ``torchcodec``: ``VideoDecoder(seek_mode="exact")``. Optional: it needs the system FFmpeg
  libraries, and it is simply absent from :func:`available_backends` when it cannot be
  imported.

A trap we measured (``tests/data/test_decoding.py``): in an MPEG-4 AVI with B-frames the
packets carry ``pts != dts`` (the first ``pts`` is 1, not 0), and both decord and
torchcodec then return the WRONG frames after a seek (decord two frames late, torchcodec
one frame early), while their sequential decode is right. So before a random access
:func:`has_frame_reordering` demuxes the first packets (no decoding, cached per file); on
such a stream decord and torchcodec decode from frame 0 instead of seeking. Streams
without B-frames (the common xvid/DivX case) keep the fast seeking path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Literal, Sequence, get_args

import numpy as np
import torch

from ..errors import InvalidValueError, SnlVideoError

logger = logging.getLogger(__name__)

__all__ = ["Backend", "BACKENDS", "DecodeError", "VideoInfo", "available_backends", "read_frames", "probe_video", "decode_all", "iter_frames",
           "has_frame_reordering", "timestamp_rate", "TimestampRate", "check_backend", "READERS",
           "backend_importable", "forget_fallbacks"]

Backend = Literal["pyav", "decord", "torchcodec"]
#: All backends the toolkit knows, in order of preference for :func:`read_frames`'s default.
BACKENDS: tuple[Backend, ...] = get_args(Backend)


class DecodeError(SnlVideoError, RuntimeError):
    """A video could not be decoded (or has fewer frames than an index asked for)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (the header, not a decode)."""

    width: int
    height: int
    fps: float
    declared_frames: int  # 0 when the container does not say
    codec: str


@lru_cache(maxsize=None)
def backend_importable(backend: str) -> bool:
    """Whether ``backend``'s package imports here (asked once per process); :func:`read_frames`
    and :func:`available_backends` ask it."""
    try:
        if backend == "pyav":
            import av  # noqa: F401
        elif backend == "decord":
            import decord  # noqa: F401
        elif backend == "torchcodec":
            from torchcodec.decoders import VideoDecoder  # noqa: F401
        else:
            return False
    except Exception as exc:  # ImportError, or OSError/RuntimeError when FFmpeg libraries are missing
        logger.debug("decoding backend %s unavailable: %s", backend, exc)
        return False
    return True


def available_backends() -> list[Backend]:
    """The backends that can be imported here, in order of preference."""
    return [b for b in BACKENDS if backend_importable(b)]


def check_backend(backend: str | None) -> Backend:
    """``backend`` checked (known and importable here); ``None``: the first available."""
    if backend is None:
        return available_backends()[0]
    if backend not in BACKENDS:
        raise InvalidValueError(f"unknown decoding backend {backend!r}; choose one of {list(BACKENDS)}")
    if not backend_importable(backend):
        raise InvalidValueError(
            f"decoding backend {backend!r} is not available here (available: {available_backends()}); "
            f"install it or pick another"
        )
    return backend


def probe_video(path: str | Path) -> VideoInfo:
    """Read the header of ``path`` with PyAV (no decoding)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:  # e.g. an MP4 cut before its codec parameters
                raise DecodeError(f"{path}: its video stream has no decodable codec parameters (truncated?)")
            rate = stream.average_rate or stream.guessed_rate or 0
            return VideoInfo(
                width=int(stream.codec_context.width),
                height=int(stream.codec_context.height),
                fps=float(rate),
                declared_frames=int(stream.frames or 0),
                codec=str(stream.codec_context.name),
            )
    except (av.FFmpegError, UnicodeDecodeError) as exc:  # a garbled metadata tag fails to decode as text
        raise DecodeError(f"{path}: {exc}") from exc


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield every frame PyAV decodes sequentially, ``uint8 (H, W, 3)`` RGB, single-threaded.

    Raises :class:`DecodeError` when the file cannot be opened or has no video stream, and
    also when decoding fails part-way (after yielding the frames decoded before the failure).
    """
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise DecodeError(f"cannot open: {exc}") from exc
    with container:
        if not container.streams.video:
            raise DecodeError("no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # e.g. an MP4 cut before its codec parameters
            raise DecodeError("its video stream has no decodable codec parameters (truncated?)")
        stream.codec_context.thread_count = 1
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise DecodeError(f"decoding failed: {exc}") from exc


def decode_all(path: str | Path) -> np.ndarray:
    """Every frame of ``path`` as ``uint8 (T, H, W, 3)``: the reference the backends must match."""
    frames = list(iter_frames(path))
    if not frames:
        raise DecodeError(f"{path}: no frame could be decoded")
    return np.stack(frames)


def _read_pyav(path: str, wanted: list[int]) -> dict[int, np.ndarray]:
    import av

    last = wanted[-1]
    want = set(wanted)
    out: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i in want:
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return out


@lru_cache(maxsize=4096)
def _reordering_cached(path: str, size: int, mtime_ns: int, packets: int) -> bool:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        for k, packet in enumerate(container.demux(stream)):
            if k >= packets:
                break
            if packet.size == 0:  # flush packet at the end of the stream
                continue
            if packet.pts is None or packet.dts is None or packet.pts != packet.dts:
                return True
    return False


def has_frame_reordering(path: str | Path, *, packets: int = 48) -> bool:
    """Whether the first ``packets`` packets of the video stream are out of presentation order
    (B-frames: ``pts != dts``, or no timestamps), read by demuxing only. Cached per file
    (path, size, mtime). A file that cannot be demuxed is a :class:`DecodeError`."""
    try:
        stat = Path(path).stat()
        return _reordering_cached(str(path), stat.st_size, stat.st_mtime_ns, packets)
    except Exception as exc:  # PyAV's and the OS's own types (no stream: IndexError): one error type leaves here
        raise DecodeError(f"{path}: cannot read its packets: {exc}") from exc


@dataclass(frozen=True)
class TimestampRate:
    """The frame rate a video's packet timestamps give (:func:`timestamp_rate`).

    ``fps``: frames per second on average (frames over the time from the first frame's start
    to the last one's end); ``regular``: whether consecutive frames are evenly spaced (every
    gap within 10% of the median: a constant frame rate); ``duration_s``: that time.
    """

    fps: float
    regular: bool
    duration_s: float


@lru_cache(maxsize=1024)
def _timestamp_rate_cached(path: str, size: int, mtime_ns: int) -> TimestampRate | None:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        if stream.time_base is None:
            return None
        times = sorted(packet.pts for packet in container.demux(stream) if packet.size > 0 and packet.pts is not None)
        base = float(stream.time_base)
    if len(times) < 3:
        return None
    gaps = np.diff(np.asarray(times, dtype=np.float64)) * base
    median = float(np.median(gaps))
    if median <= 0:
        return None
    duration = (times[-1] - times[0]) * base + median  # the last frame lasts a typical gap
    regular = bool(np.all(np.abs(gaps - median) <= 0.1 * median))
    return TimestampRate(fps=len(times) / duration, regular=regular, duration_s=duration)


def timestamp_rate(path: str | os.PathLike[str]) -> TimestampRate | None:
    """The frame rate the video stream's packet timestamps give, read by demuxing only (no
    decoding; cached per file): what a container's declared rate (``probe_video().fps``)
    cannot tell, a variable frame rate or a declared rate the frames do not follow. None when
    the packets carry no usable timestamps (fewer than 3, or all at one time)."""
    try:
        stat = Path(path).stat()
        return _timestamp_rate_cached(str(path), stat.st_size, stat.st_mtime_ns)
    except Exception as exc:  # PyAV's and the OS's own types (no stream: IndexError): one error type leaves here
        raise DecodeError(f"{path}: cannot read its packets: {exc}") from exc


def _read_decord(path: str, wanted: list[int]) -> dict[int, np.ndarray]:
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    if wanted[-1] >= len(reader):
        raise IndexError(f"frame {wanted[-1]} requested but decord sees {len(reader)} frames")
    if has_frame_reordering(path):  # seeking is not frame-exact here: decode from frame 0
        batch = reader.get_batch(list(range(wanted[-1] + 1))).asnumpy()
        return {i: batch[i] for i in wanted}
    batch = reader.get_batch(wanted).asnumpy()
    return dict(zip(wanted, batch))


def _read_torchcodec(path: str, wanted: list[int]) -> dict[int, np.ndarray]:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact", num_ffmpeg_threads=1)
    n = decoder.metadata.num_frames
    if n is not None and wanted[-1] >= n:
        raise IndexError(f"frame {wanted[-1]} requested but torchcodec sees {n} frames")
    if has_frame_reordering(path):  # seeking is not frame-exact here: decode from frame 0
        batch = decoder.get_frames_in_range(start=0, stop=wanted[-1] + 1).data.numpy()
        return {i: batch[i] for i in wanted}
    batch = decoder.get_frames_at(indices=wanted).data.numpy()
    return dict(zip(wanted, batch))


#: Each backend's frame reader, by backend name: ``(path, wanted indices)`` → frames in that order;
#: :func:`read_frames` dispatches through it and falls back to PyAV when a reader fails.
READERS = {"pyav": _read_pyav, "decord": _read_decord, "torchcodec": _read_torchcodec}


def read_frames(path: str | Path, indices: Sequence[int], *, backend: Backend | None = None) -> torch.Tensor:
    """Frames ``indices`` (0-based, decode order; any order, repeats allowed) of ``path``.

    Returns ``uint8 (len(indices), H, W, 3)`` RGB. ``backend=None`` takes the first of
    :func:`available_backends`. When another backend fails where PyAV (the reference)
    succeeds, the frames come from PyAV, and so do later reads of that file (one warning
    per backend). Raises :class:`DecodeError` when the file cannot be decoded or an index
    is past its last frame, ``ValueError`` for a bad argument.
    """
    name = check_backend(backend)
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("indices is empty; ask for at least one frame")
    if min(indices) < 0:
        raise ValueError(f"frame indices must be >= 0, got {min(indices)}")
    wanted = sorted(set(indices))
    path = str(path)
    if name != "pyav" and _fell_back(path, name):
        name = "pyav"  # this backend already failed on this file: PyAV directly
    try:
        got = READERS[name](path, wanted)
        missing = [i for i in wanted if i not in got]
        if missing:
            raise DecodeError(f"{path}: {name} decoded fewer frames than requested (missing {missing[:5]}...)")
    except Exception as exc:  # each library raises its own types; one error type leaves here
        problem = exc if isinstance(exc, DecodeError) else DecodeError(
            f"{path}: {name} failed to decode frames {wanted[0]}..{wanted[-1]}: {exc}")
        if name == "pyav" or not backend_importable("pyav"):
            raise problem from exc
        got = _pyav_fallback(path, wanted, name, problem)
    return torch.from_numpy(np.stack([got[i] for i in indices]))


#: (path, size, mtime) -> backend whose read failed on that file and was replaced by PyAV.
_FALLBACKS: dict[tuple[str, int, int], str] = {}
_WARNED_FALLBACK: set[str] = set()


def forget_fallbacks() -> None:
    """Forget which videos were handed to PyAV after a backend failed on them, and which
    backends were warned about: the next failure is tried, and warned about, afresh."""
    _FALLBACKS.clear()
    _WARNED_FALLBACK.clear()


def _file_key(path: str) -> tuple[str, int, int]:
    try:
        stat = Path(path).stat()
    except OSError:
        return (path, -1, -1)
    return (path, stat.st_size, stat.st_mtime_ns)


def _fell_back(path: str, backend: str) -> bool:
    return _FALLBACKS.get(_file_key(path)) == backend


def _pyav_fallback(path: str, wanted: list[int], backend: str, problem: DecodeError) -> dict[int, np.ndarray]:
    """Frames ``wanted`` by the reference decoder after ``backend`` failed on them: a video a
    backend cannot fully decode (torchcodec and the last frames of a B-frame MPEG-4 AVI) is
    read with PyAV from then on, with one warning per backend and process, instead of
    failing the item. When PyAV cannot decode them either, ``problem`` is raised."""
    try:
        got = _read_pyav(path, wanted)
    except Exception as exc:  # noqa: BLE001 - PyAV failing too: the backend's error is the one to report
        raise problem from exc
    missing = [i for i in wanted if i not in got]
    if missing:
        raise problem
    _FALLBACKS[_file_key(path)] = backend
    if len(_FALLBACKS) > 65536:  # bounded: forget the oldest
        _FALLBACKS.pop(next(iter(_FALLBACKS)))
    if backend not in _WARNED_FALLBACK:
        _WARNED_FALLBACK.add(backend)
        logger.warning("%s; PyAV decodes them, so such videos are read with PyAV (warned once per process)", problem)
    else:
        logger.debug("%s; read with PyAV", problem)
    return got
