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
* :func:`failure_reason`: why a video could not be read, in one line.

Frames are addressed by index (never seconds) and come back as ``uint8 (T, H, W, 3)``, as
:func:`~snl_video.data.decoding.read_frames` gives them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Protocol, Sequence

from torch import Tensor

from .decoding import Backend, DecodeError, iter_frames, probe_video, read_frames
from .sampling import center_clip
from ..errors import InvalidValueError, MissingFileError

__all__ = ["VIDEO_SUFFIXES", "is_video_file", "find_videos", "count_frames", "count_entry_frames",
           "read_entry_frames", "read_centre_clip", "failure_reason", "HasPath"]

#: File suffixes taken as videos when a folder is searched (any container FFmpeg reads;
#: compared lower-case). Used by the folder dataset source, predict/features and preflight.
VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv",
                                   ".wmv", ".3gp", ".ogv", ".ts")


class HasPath(Protocol):
    """Anything with a ``path`` (a :class:`~snl_video.data.datasets.VideoEntry`)."""

    path: str


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


def read_centre_clip(
    path: str | os.PathLike[str], *, num_frames: int, sampling_stride: int = 1, backend: Backend | None = None
) -> Tensor:
    """The centre clip of the video at ``path``: ``num_frames`` frames ``sampling_stride`` apart
    around the middle (:func:`~snl_video.data.sampling.center_clip`, short videos looped as
    ``eval`` loops them), ``uint8 (T, H, W, 3)``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"video {path} does not exist; check the path")
    indices = center_clip(count_frames(path), clip_len=num_frames, stride=sampling_stride)[0]
    return read_frames(path, indices, backend=backend)


def find_videos(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files given, plus the videos (by :data:`VIDEO_SUFFIXES`, recursively, sorted) of folders given.

    A path that does not exist, or a folder without videos, is an error naming it.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InvalidValueError("no video given: pass video files or folders of videos")
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
    names the video): "empty file (0 bytes)", "truncated: ...", or the decoder's message."""
    path = str(path)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    while text.startswith(path + ": "):
        text = text[len(path) + 2:]
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        return "empty file (0 bytes)"  # the decoder's own text ("[Errno 1094995529] Invalid data ...") adds nothing
    if "fewer frames than requested" in text:
        return f"truncated: fewer frames decode than the container declares ({text})"
    return text
