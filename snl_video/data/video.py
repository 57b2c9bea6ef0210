"""Video files as the toolkit reads them: which files are videos, their frame count, their frames.

One place for what datasets, ``predict``, ``explain``, ``spectrum`` and ``features`` all
need (they used to carry copies that drifted apart):

* :data:`VIDEO_SUFFIXES`: the file suffixes taken as videos when a folder is searched
  (:func:`find_videos`);
* :func:`count_frames`: the number of frames of a file, from the container header when it
  declares one, else counted by decoding (``.mkv`` / ``.webm`` usually declare none);
* :func:`read_entry_frames`: the frames of a dataset entry by index (the reader datasets
  and predict hand to :class:`~snl_video.data.datasets.ClipDataset`);
* :func:`read_centre_clip`: the centre clip of a file, as ``eval``'s clip-level test takes it;
* :func:`stream_clips` / :func:`read_entry_clips`: many clips of one file in ONE decoding
  pass (frames decoded in order once, a buffer holding only the frames clips still to come
  need): what every verb that reads several clips of a video uses (predict's whole-video
  views and its ``--window`` timeline, evaluation with a decoding backend);
* :func:`failure_reason`: why a video could not be read, in one line.

Frames are addressed by index (never seconds) and come back as ``uint8 (T, H, W, 3)``, as
:func:`~snl_video.data.decoding.read_frames` gives them.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from .decoding import Backend, DecodeError, check_backend, iter_frames, probe_video, read_frames
from .sampling import center_clip
from ..errors import InvalidValueError, MissingFileError

logger = logging.getLogger(__name__)

__all__ = ["VIDEO_SUFFIXES", "is_video_file", "find_videos", "count_frames", "count_entry_frames",
           "read_entry_frames", "read_entry_clips", "read_centre_clip", "stream_clips", "iter_decoded_frames",
           "failure_reason", "HasPath", "SEQUENTIAL_READERS"]

#: File suffixes taken as videos when a folder is searched (any container FFmpeg reads;
#: compared lower-case). Used by the folder dataset source, predict/features and preflight.
VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv",
                                   ".wmv", ".3gp", ".ogv", ".ts")


class HasPath(Protocol):
    """Anything with a ``path`` (a :class:`~snl_video.data.datasets.VideoEntry`).

    Read-only (a property), so a frozen dataclass such as ``VideoEntry`` matches it.
    """

    @property
    def path(self) -> str: ...


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``'s suffix is one of :data:`VIDEO_SUFFIXES` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def count_frames(path: str | os.PathLike[str]) -> int:
    """The number of frames of the video at ``path``.

    The count the container declares when it declares one (no decoding: what ``eval``
    always read), else every frame decoded and counted (Matroska / WebM usually declare
    none). Cached per file (path, size, modification time), so a video sampled several
    times is decoded for counting once. Raises :class:`DecodeError` when nothing decodes.
    """
    stat = Path(path).stat()
    return _count_frames_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _count_frames_cached(path: str, size: int, mtime_ns: int) -> int:
    count = probe_video(path).declared_frames
    if count > 0:
        return count
    count = sum(1 for _ in iter_frames(path))
    if count == 0:
        raise DecodeError(f"{path}: no frame could be decoded")
    return count


def count_entry_frames(entry: HasPath) -> int:
    """:func:`count_frames` of a dataset entry (the ``count_frames`` a ``ClipDataset`` takes)."""
    return count_frames(entry.path)


def read_entry_frames(entry: HasPath, indices: Sequence[int], *, backend: Backend | None = None) -> Tensor:
    """Frames ``indices`` of a dataset entry's video file, ``uint8 (T, H, W, 3)``.

    Module-level (picklable with ``functools.partial``), so datasets using it work in
    spawn-started DataLoader workers.
    """
    return read_frames(entry.path, list(indices), backend=backend)


def read_entry_clips(entry: HasPath, clips: Sequence[Sequence[int]], *, backend: Backend | None = None) -> list[Tensor]:
    """Every clip of ``clips`` (lists of frame indices) of a dataset entry's video file, in
    one decoding pass (:func:`stream_clips`), in the order given; each ``uint8 (T, H, W, 3)``.

    The frames equal :func:`read_entry_frames` clip by clip (tested for each backend on
    a video with B-frames); the file is decoded once instead of once per clip.
    """
    out: list[Tensor | None] = [None] * len(clips)
    for index, frames in stream_clips(entry.path, clips, backend=backend):
        out[index] = frames
    return out  # type: ignore[return-value]  # stream_clips yields every clip or raises


# --------------------------------------------------------------------------------------
# One decoding pass
# --------------------------------------------------------------------------------------

#: Frames asked from decord / torchcodec per call while decoding sequentially.
_CHUNK = 32


def _frames_pyav(path: str, stop: int) -> Iterator[tuple[int, Callable[[], np.ndarray]]]:
    """(index, convert) of each decoded frame up to ``stop`` (exclusive); ``convert()`` gives the
    RGB array (so frames nobody needs are never converted)."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise DecodeError(f"cannot open: {exc}") from exc
    with container:
        if not container.streams.video:
            raise DecodeError("no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index >= stop:
                    return
                yield index, functools.partial(frame.to_ndarray, format="rgb24")
        except av.FFmpegError as exc:
            raise DecodeError(f"decoding failed: {exc}") from exc


def _ready(frame: np.ndarray) -> Callable[[], np.ndarray]:
    """A frame already decoded, behind the same zero-argument call as a lazy conversion."""
    return lambda: frame


def _frames_decord(path: str, stop: int) -> Iterator[tuple[int, Callable[[], np.ndarray]]]:
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    end = min(stop, len(reader))
    for first in range(0, end, _CHUNK):  # consecutive indices: decord decodes on without seeking
        batch = reader.get_batch(list(range(first, min(first + _CHUNK, end)))).asnumpy()
        for k, frame in enumerate(batch):
            yield first + k, _ready(frame)


def _frames_torchcodec(path: str, stop: int) -> Iterator[tuple[int, Callable[[], np.ndarray]]]:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact", num_ffmpeg_threads=1)
    total = decoder.metadata.num_frames
    end = stop if total is None else min(stop, total)
    for first in range(0, end, _CHUNK):
        batch = decoder.get_frames_in_range(start=first, stop=min(first + _CHUNK, end)).data.numpy()
        for k, frame in enumerate(batch):
            yield first + k, _ready(frame)


#: Each backend's sequential frame source, by backend name: ``(path, stop)`` → an iterator of
#: ``(index, convert)`` pairs for frames ``0 .. stop - 1`` in order (``convert()`` gives the RGB frame).
SEQUENTIAL_READERS = {"pyav": _frames_pyav, "decord": _frames_decord, "torchcodec": _frames_torchcodec}


def iter_decoded_frames(path: str | os.PathLike[str], *, stop: int | None = None,
                        backend: Backend | None = None) -> Iterator[tuple[int, Callable[[], np.ndarray]]]:
    """``(index, convert)`` for frames ``0 .. stop - 1`` of ``path`` decoded in order, once.

    ``convert()`` returns the frame as ``uint8 (H, W, 3)`` RGB; frames nobody converts cost
    only their decoding. Sequential decoding is exact on every backend (B-frames included:
    no seek happens). When decord or torchcodec fails part-way, the rest comes from PyAV
    (the reference) with a warning, as :func:`~snl_video.data.decoding.read_frames` does.
    """
    name = check_backend(backend)
    path = str(path)
    limit = stop if stop is not None else 2 ** 62
    done = 0
    try:
        for index, convert in SEQUENTIAL_READERS[name](path, limit):
            yield index, convert
            done = index + 1
        return
    except Exception as exc:  # noqa: BLE001 - each library raises its own types; one error type leaves here
        if name == "pyav":
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError(f"{path}: pyav failed: {exc}") from exc
        problem = exc
    logger.warning("%s: %s failed after %d frames (%s); decoding the rest with PyAV", path, name, done, problem)
    for index, convert in _frames_pyav(path, limit):
        if index >= done:
            yield index, convert


def stream_clips(
    path: str | os.PathLike[str], clips: Sequence[Sequence[int]], *, backend: Backend | None = None
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(clip_index, frames)`` for each of ``clips`` as soon as its frames are decoded.

    ``clips`` are lists of 0-based frame indices (any order within a clip, repeats allowed,
    as the samplers make them); ``frames`` is ``uint8 (T, H, W, 3)`` like
    :func:`~snl_video.data.decoding.read_frames`. The video is decoded ONCE, in order, up to
    the last frame any clip needs; a frame is kept only from its decoding until the last
    clip needing it has been yielded. Clips are yielded in the order their last frame is
    decoded (ties: the order given), so for windows sliding along a video the buffer holds
    about one window of frames, whatever the length of the video.

    Raises :class:`~snl_video.data.decoding.DecodeError` when the video ends before a frame
    a clip needs (the clips completed before that have been yielded).
    """
    clips = [[int(i) for i in clip] for clip in clips]
    if not clips:
        return
    for clip in clips:
        if not clip:
            raise ValueError("a clip with no frame index; each clip needs at least one")
        if min(clip) < 0:
            raise ValueError(f"frame indices must be >= 0, got {min(clip)}")
    order = sorted(range(len(clips)), key=lambda c: (max(clips[c]), c))
    # rank of the last clip (in yield order) that needs each frame: after it, the frame goes
    last_use: dict[int, int] = {}
    for rank, c in enumerate(order):
        for i in clips[c]:
            last_use[i] = rank
    stop = max(last_use) + 1
    buffer: dict[int, np.ndarray] = {}
    rank = 0
    for index, convert in iter_decoded_frames(path, stop=stop, backend=backend):
        if index in last_use:
            buffer[index] = convert()
        while rank < len(order) and max(clips[order[rank]]) <= index:
            c = order[rank]
            yield c, torch.from_numpy(np.stack([buffer[i] for i in clips[c]]))
            for i in set(clips[c]):
                if last_use[i] == rank:
                    del buffer[i]
            rank += 1
        if rank == len(order):
            return
    missing = max(clips[order[rank]])
    raise DecodeError(f"{path}: the video ends before frame {missing}: fewer frames than requested")


def read_centre_clip(
    path: str | os.PathLike[str], *, num_frames: int, sampling_stride: int = 1, backend: Backend | None = None
) -> Tensor:
    """The centre clip of the video at ``path``: ``num_frames`` frames ``sampling_stride`` apart
    around the middle (:func:`~snl_video.data.sampling.center_clip`, short videos looped as
    ``eval`` loops them), ``uint8 (T, H, W, 3)``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"video {path} does not exist; check the path")
    indices = center_clip(count_frames(path), num_frames=num_frames, stride=sampling_stride)[0]
    return read_frames(path, indices, backend=backend)


def find_videos(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files given, plus the videos (by :data:`VIDEO_SUFFIXES`, recursively, sorted) of folders given.

    A path that does not exist, or a folder without videos, is an error naming it. A video named
    twice (say, the file and its folder, or two spellings of one path) is listed once, where it
    first appears.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InvalidValueError("no video given: pass video files or folders of videos")
    out = _find_all(items)
    unique: dict[Path, Path] = {}
    for path in out:
        unique.setdefault(path.resolve(), path)
    if len(unique) < len(out):
        logger.info("%d video(s) named more than once: each is used once", len(out) - len(unique))
    return list(unique.values())


def _find_all(items: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """:func:`find_videos` before de-duplication."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_video_file(p))
            if not found:
                raise InvalidValueError(f"folder {path} holds no videos (looked for {', '.join(VIDEO_SUFFIXES)}); "
                                 "pass a folder of videos or the files themselves")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise MissingFileError(f"video {path} does not exist; check the path")
    return out


def failure_reason(exc: BaseException, path: str | os.PathLike[str]) -> str:
    """Why reading the video at ``path`` failed, in one line without the path (the caller
    names the video): "empty file (0 bytes)", "truncated: ...", "not a video FFmpeg can open: ...",
    or the decoder's message."""
    path = str(path)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    while text.startswith(path + ": "):
        text = text[len(path) + 2:]
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        return "empty file (0 bytes)"  # the decoder's own text ("[Errno 1094995529] Invalid data ...") adds nothing
    if "fewer frames than requested" in text:
        return f"truncated: fewer frames decode than the container declares ({text})"
    if "Invalid data found when processing input" in text:
        # FFmpeg's AVERROR_INVALIDDATA ("[Errno 1094995529] ...: '<path>'"): its number and the path add nothing
        return ("not a video FFmpeg can open: no container header it recognises (a corrupt file, one cut before "
                "its header, or another kind of file)")
    return text
