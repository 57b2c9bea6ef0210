"""The prepared format: one file of frames per video (raw ``.npy`` or packed JPEGs), plus a clip index.

Layout of a prepared directory ``OUT/``::

    OUT/settings.json                 how it was prepared (short side, clip length, policy, storage)
    OUT/index.csv                     the clip index: one row per usable video (see INDEX_COLUMNS)
    OUT/report.json                   every listed video that was found, with its status
    OUT/videos/<Class>/<stem>.npy     storage "npy": uint8 (T, H, W, 3), RGB, short side resized
                                      (128x171 for UCF-101)
    OUT/videos/<Class>/<stem>.jpegs   storage "jpeg": the same frames, each a JPEG, in one file
    OUT/videos/<Class>/<stem>.json    the per-video record (status, frames, shape, source size)

Why this format: training reads 16 of ~180 frames per video, at random. Decoding an
MPEG-4 AVI to get them costs a decode from the previous key frame (and PyAV decodes from
the start); a ``.npy`` opened with ``mmap_mode="r"`` makes a clip a slice, with zero
decode cost and only the touched pages read. Frames are stored at 128x171 (the size
3D-ResNets-PyTorch and torchvision's video models train from), so the augmentation works
on 2.5x fewer pixels than the 240x320 source. The price is disk: raw pixels are ~10-20x
larger than the compressed AVI (``scripts/bench_data.py`` measures it); UCF-101 at
128x171 is ~160 GB. So ``prepare`` packs the same frames as JPEGs by default
(``storage="jpeg"``, quality 90; the rawframes convention of mmaction2 and SlowFast) into
one ``.jpegs`` file per video: ~8x smaller (~2.5x the AVIs; UCF-101 ~20 GB), and a clip
costs a JPEG decode of each of its frames (still no seeking through a video stream; ~1.7-2.9x
slower than ``.npy``, ~6x faster than PyAV on the AVI). ``storage="npy"`` is the faster
option where the disk allows. ``scripts/bench_data.py`` measures both. ``settings.json``
records the storage (directories written before it was recorded hold ``.npy``).

The ``.jpegs`` container (little-endian): the 8 bytes ``SNLJPEG1``; uint32 frame count T,
uint16 height, uint16 width; int64 offsets[T + 1] of each JPEG relative to the end of the
offsets; then the JPEG bytes. A reader needs only the header and the bytes of the frames
it uses: :func:`read_clip` makes one positioned read for the header and offsets and one for
the byte range of the clip's frames, and decodes them with torchcodec's ``decode_jpeg``
(libjpeg-turbo; the same pixels as PIL, ~1.5x as many training clips/s, for lack of PIL's
per-image objects and copies), or with PIL where torchcodec cannot be imported. The
container is unchanged since its first version, so every ``.jpegs`` file reads the same.

Format versions (``format_version`` in ``settings.json``, :data:`FORMAT_VERSION`): 2 names
the clip length ``num_frames`` in ``settings.json`` and a video's frame count
``video_frames`` in ``index.csv`` and the per-video records; format 1 called them
``clip_len`` and ``num_frames``. Nothing else differs, so a format-1 directory reads the
same: :func:`upgrade_settings`, :func:`upgrade_record` and :func:`load_index` give its
files under the format-2 names, and re-running ``prepare`` on it rewrites it as format 2.

Crash safety: every file is written to a temporary name in the same folder and then
``os.replace``-d into place, so a name that exists is complete. A video's ``.json``
record is written after its frames file; a record is what marks a video done. The index and
the report are written last. Readers look only at ``index.csv``.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import pandas as pd
import torch

from ..errors import InvalidValueError, MissingFileError
from ..fileio import OutputWriteError, os_error_in, write_error

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "STORAGES",
    "save_jpeg_frames",
    "INDEX_COLUMNS",
    "KEPT_STATUSES",
    "atomic_write_bytes",
    "atomic_write_json",
    "save_frames",
    "load_index",
    "upgrade_record",
    "upgrade_settings",
    "read_clip",
    "frames_path",
    "record_path", "HEAD_READ_BYTES", "pil_decode", "jpeg_decoder",
]

FORMAT_VERSION = 2
#: Format 1's names of what format 2 renamed: in ``settings.json`` (the clip length) and in
#: ``index.csv`` / the per-video records (the video's frame count).
FORMAT_1_SETTINGS_NAMES = {"clip_len": "num_frames"}
FORMAT_1_RECORD_NAMES = {"num_frames": "video_frames"}
#: How frames are stored, and the file suffix of each.
STORAGES = {"npy": ".npy", "jpeg": ".jpegs"}
JPEG_MAGIC = b"SNLJPEG1"
_JPEG_HEADER = np.dtype([("magic", "S8"), ("frames", "<u4"), ("height", "<u2"), ("width", "<u2")])
#: Statuses whose frames are stored and listed in the index; every other status is skipped.
KEPT_STATUSES = ("ok", "short", "truncated")
INDEX_COLUMNS = ["path", "class_name", "label", "status", "video_frames", "height", "width", "frames_file"]


def _renamed(data: dict, names: dict[str, str]) -> dict:
    return {names.get(k, k) if names.get(k, k) not in data else k: v for k, v in data.items()}


def upgrade_settings(settings: dict) -> dict:
    """A ``settings.json`` under the current names: a format-1 one (``clip_len``, or no
    ``format_version``) reads as format 2, which differs from it only in names."""
    upgraded = _renamed(settings, FORMAT_1_SETTINGS_NAMES)
    if upgraded.get("format_version", 1) == 1:
        upgraded["format_version"] = FORMAT_VERSION
    return upgraded


def upgrade_record(record: dict) -> dict:
    """A per-video record (or index row) under the current names (format 1: ``num_frames``)."""
    return _renamed(record, FORMAT_1_RECORD_NAMES)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through ``write(stream)`` to ``<name>.tmp-<pid>``, then ``os.replace``.

    The ``.tmp-<pid>`` suffix is what :func:`snl_video.data.prepare` sweeps away after a
    killed run, so this module keeps its own naming rather than :mod:`snl_video.fileio`'s.
    A full disk or an unwritable folder is an :class:`~snl_video.fileio.OutputWriteError`
    (one line for the user; the previous file under ``path`` is untouched).
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as exc:
        cause = os_error_in(exc)
        if cause is None or isinstance(exc, OutputWriteError):
            raise
        kept = "the previous file is kept" if path.exists() else "no partial file was left"
        raise write_error(path, cause, kept=kept) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent/old or complete."""
    _atomic(path, lambda f: f.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def save_frames(path: str | Path, frames: np.ndarray) -> None:
    """Save ``uint8 (T, H, W, 3)`` frames as ``.npy``, atomically."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
    _atomic(path, lambda f: np.save(f, np.ascontiguousarray(frames), allow_pickle=False))


def save_jpeg_frames(path: str | Path, frames: np.ndarray, *, quality: int = 90) -> None:
    """Save ``uint8 (T, H, W, 3)`` frames as a ``.jpegs`` container (see the module doc), atomically."""
    from PIL import Image

    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
    if not 1 <= quality <= 100:
        raise InvalidValueError(f"JPEG quality must be in 1..100, got {quality}")
    num, height, width = frames.shape[:3]
    if num >= 2**32 or height >= 2**16 or width >= 2**16:
        raise ValueError(f"frames {frames.shape} too large for the .jpegs container")
    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        # 4:2:0 chroma, as the MPEG-4 source already is; no optimisation passes (faster, deterministic)
        Image.fromarray(frame, mode="RGB").save(buffer, format="JPEG", quality=quality, subsampling=2)
        encoded.append(buffer.getvalue())
    sizes = np.array([0] + [len(e) for e in encoded], dtype="<i8")
    header = np.array([(JPEG_MAGIC, num, height, width)], dtype=_JPEG_HEADER)

    def write(f: BinaryIO) -> None:
        f.write(header.tobytes())
        f.write(np.cumsum(sizes).astype("<i8").tobytes())
        for e in encoded:
            f.write(e)

    _atomic(path, write)


#: Bytes of a ``.jpegs`` file read first: the header and the frame offsets of videos up to ~500
#: frames in one read (a longer video's offsets take a second read).
HEAD_READ_BYTES = 4096
_jpeg_decoder: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None


def pil_decode(blobs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Decode JPEGs with PIL, as ``(H, W, 3)`` uint8 tensors (the fallback without torchcodec)."""
    from PIL import Image

    out = []
    for blob in blobs:
        with Image.open(io.BytesIO(blob.numpy().tobytes()), formats=["JPEG"]) as image:
            out.append(torch.from_numpy(np.array(image.convert("RGB"))))  # a writable copy
    return out


def _torchcodec_decode(blobs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Decode JPEGs with torchcodec (libjpeg-turbo, no per-image Python objects), as ``(H, W, 3)``
    views of its ``(3, H, W)`` outputs (torchcodec writes them channels-last: no copy)."""
    from torchcodec.decoders import decode_jpeg

    return [image.permute(1, 2, 0) for image in decode_jpeg(blobs, mode="RGB")]


def jpeg_decoder() -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    """torchcodec's JPEG decoder when it imports (about 2x faster than PIL per clip; the same
    libjpeg-turbo pixels), else PIL (:func:`pil_decode`). Chosen once per process; every
    ``.jpegs`` read goes through this function, so a test or benchmark that replaces it decides
    the decoder."""
    global _jpeg_decoder
    if _jpeg_decoder is None:
        try:
            from torchcodec.decoders import decode_jpeg  # noqa: F401  (needs FFmpeg's libraries)

            _jpeg_decoder = _torchcodec_decode
        except Exception as exc:  # not installed, or its FFmpeg libraries are missing
            logger.debug("torchcodec JPEG decoding unavailable (%s); using PIL", exc)
            _jpeg_decoder = pil_decode
    return _jpeg_decoder


def _pread(fd: int, size: int, offset: int) -> bytes:
    """``os.pread`` where the platform has it (POSIX), else seek + read (Windows)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _pread_into(fd: int, buffer: np.ndarray, offset: int) -> int:
    """Fill ``buffer`` from ``offset`` without an intermediate copy where ``os.preadv`` exists."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buffer.data], offset)  # .data: the array's own memory, as a memoryview
    data = _pread(fd, buffer.size, offset)
    buffer[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return len(data)


def _read_jpeg_clip(frames_file: Path, indices: list[int]) -> torch.Tensor:
    """Frames ``indices`` of a ``.jpegs`` file: one positioned read for the header and offsets,
    one for the bytes of frames min(indices)..max(indices), one batched decode of each distinct
    frame, one copy into the ``(T, H, W, 3)`` result."""
    from .decoding import DecodeError

    fd = os.open(frames_file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        head = _pread(fd, HEAD_READ_BYTES, 0)
        if len(head) < _JPEG_HEADER.itemsize or head[:8] != JPEG_MAGIC:
            raise DecodeError(f"{frames_file}: not a .jpegs frame file (bad header); prepare the video again")
        header = np.frombuffer(head, dtype=_JPEG_HEADER, count=1)[0]
        num, height, width = int(header["frames"]), int(header["height"]), int(header["width"])
        if max(indices) >= num or min(indices) < 0:
            raise IndexError(f"{frames_file}: frame indices {min(indices)}..{max(indices)} outside 0..{num - 1}")
        data_start = _JPEG_HEADER.itemsize + 8 * (num + 1)
        if len(head) < data_start:
            head = _pread(fd, data_start, 0)
        if len(head) < data_start:
            raise DecodeError(f"{frames_file}: truncated .jpegs file; prepare the video again")
        offsets = np.frombuffer(head, dtype="<i8", count=num + 1, offset=_JPEG_HEADER.itemsize).tolist()
        if size < data_start + offsets[-1]:
            raise DecodeError(f"{frames_file}: truncated .jpegs file; prepare the video again")
        first, last = min(indices), max(indices)
        buffer = np.empty(offsets[last + 1] - offsets[first], dtype=np.uint8)
        if _pread_into(fd, buffer, data_start + offsets[first]) != buffer.size:
            raise DecodeError(f"{frames_file}: truncated .jpegs file; prepare the video again")
    finally:
        os.close(fd)
    unique = sorted(set(indices))  # loop-padded clips repeat frames: decode each once
    data = torch.from_numpy(buffer)
    base = offsets[first]
    blobs = [data[offsets[i] - base : offsets[i + 1] - base] for i in unique]
    try:
        frames = jpeg_decoder()(blobs)
    except (OSError, SyntaxError, ValueError, RuntimeError) as exc:  # PIL's and torchcodec's damaged-data errors
        raise DecodeError(f"{frames_file}: a JPEG frame of {unique[0]}..{unique[-1]} does not decode ({exc}); "
                          "prepare the video again") from exc
    for i, frame in zip(unique, frames):
        if tuple(frame.shape) != (height, width, 3):
            raise DecodeError(f"{frames_file}: frame {i} decodes to {tuple(frame.shape[:2])}, the header says "
                              f"{(height, width)}")
    if len(unique) == len(indices) and unique == indices:
        return torch.stack(frames)
    position = {i: k for k, i in enumerate(unique)}
    return torch.stack([frames[position[i]] for i in indices])


def frames_path(out_dir: Path, video: str, storage: str = "npy") -> Path:
    """Where the frames of listed video ``Class/v_x.avi`` go (``.npy`` or ``.jpegs`` by ``storage``)."""
    if storage not in STORAGES:
        raise InvalidValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    return out_dir / "videos" / Path(video).with_suffix(STORAGES[storage])


def record_path(out_dir: Path, video: str) -> Path:
    return out_dir / "videos" / Path(video).with_suffix(".json")


def load_index(root: str | Path) -> pd.DataFrame:
    """The clip index of a prepared directory (only complete, usable videos are in it)."""
    root = Path(root)
    path = root / "index.csv"
    if not path.is_file():
        from .sources import list_sources

        raise MissingFileError(
            f"{path} not found: {root} is not a finished prepared directory; run `snl-video prepare "
            f"<{'|'.join(list_sources())}> ... --output-dir {root}`"
        )
    index = pd.read_csv(path, keep_default_na=False)
    if "video_frames" not in index.columns:  # format 1
        index = index.rename(columns=FORMAT_1_RECORD_NAMES)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise InvalidValueError(f"{path} lacks columns {missing}; prepare it again with this version")
    return index


def read_clip(frames_file: str | Path, indices: list[int]) -> torch.Tensor:
    """Frames ``indices`` of a prepared video, ``uint8 (T, H, W, 3)``: a memory-mapped slice of a
    ``.npy``, or the decoded JPEGs of a ``.jpegs`` (chosen by the suffix)."""
    if not indices:
        raise ValueError(f"{frames_file}: no frame indices")
    if Path(frames_file).suffix == STORAGES["jpeg"]:
        return _read_jpeg_clip(Path(frames_file), list(indices))
    array = np.load(frames_file, mmap_mode="r", allow_pickle=False)
    if max(indices) >= array.shape[0] or min(indices) < 0:
        raise IndexError(f"{frames_file}: frame indices {min(indices)}..{max(indices)} outside 0..{array.shape[0] - 1}")
    return torch.from_numpy(np.ascontiguousarray(array[indices]))
