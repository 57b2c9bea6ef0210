"""The prepared format: one memory-mappable ``.npy`` per video, plus a clip index.

Layout of a prepared directory ``OUT/``::

    OUT/settings.json                 how it was prepared (short side, clip length, policy)
    OUT/index.csv                     the clip index: one row per usable video (see INDEX_COLUMNS)
    OUT/report.json                   every listed video that was found, with its status
    OUT/videos/<Class>/<stem>.npy     uint8 (T, H, W, 3), RGB, short side resized (128x171 for UCF-101)
    OUT/videos/<Class>/<stem>.json    the per-video record (status, frames, shape, source size)

Why this format: training reads 16 of ~180 frames per video, at random. Decoding an
MPEG-4 AVI to get them costs a decode from the previous key frame (and PyAV decodes from
the start); a ``.npy`` opened with ``mmap_mode="r"`` makes a clip a slice, with zero
decode cost and only the touched pages read. Frames are stored at 128x171 (the size
3D-ResNets-PyTorch and torchvision's video models train from), so the augmentation works
on 2.5x fewer pixels than the 240x320 source. The price is disk: raw pixels are ~10-20x
larger than the compressed AVI (``scripts/bench_data.py`` measures it); UCF-101 at
128x171 is ~163 GB, which fits a data SSD. JPEG frames would be ~4x smaller but pay a
JPEG decode per frame.

Crash safety: every file is written to a temporary name in the same folder and then
``os.replace``-d into place, so a name that exists is complete. A video's ``.json``
record is written after its ``.npy``; a record is what marks a video done. The index and
the report are written last. Readers look only at ``index.csv``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import pandas as pd
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "INDEX_COLUMNS",
    "KEPT_STATUSES",
    "atomic_write_bytes",
    "atomic_write_json",
    "save_frames",
    "load_index",
    "read_clip",
    "frames_path",
    "record_path",
]

FORMAT_VERSION = 1
#: Statuses whose frames are stored and listed in the index; every other status is skipped.
KEPT_STATUSES = ("ok", "short", "truncated")
INDEX_COLUMNS = ["path", "class_name", "label", "status", "num_frames", "height", "width", "frames_file"]


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through ``write(stream)`` to ``<name>.tmp-<pid>``, then ``os.replace``.

    The ``.tmp-<pid>`` suffix is what :func:`snl_video.data.prepare` sweeps away after a
    killed run, so this module keeps its own naming rather than :mod:`snl_video.fileio`'s.
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


def frames_path(out_dir: Path, video: str) -> Path:
    """Where the frames of listed video ``Class/v_x.avi`` go."""
    return out_dir / "videos" / Path(video).with_suffix(".npy")


def record_path(out_dir: Path, video: str) -> Path:
    return out_dir / "videos" / Path(video).with_suffix(".json")


def load_index(root: str | Path) -> pd.DataFrame:
    """The clip index of a prepared directory (only complete, usable videos are in it)."""
    root = Path(root)
    path = root / "index.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {root} is not a finished prepared directory; run `snl-video prepare ucf101 --out {root}`"
        )
    index = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; prepare it again with this version")
    return index


def read_clip(frames_file: str | Path, indices: list[int]) -> torch.Tensor:
    """Frames ``indices`` of a prepared video, ``uint8 (T, H, W, 3)``; a memory-mapped slice."""
    array = np.load(frames_file, mmap_mode="r", allow_pickle=False)
    if max(indices) >= array.shape[0] or min(indices) < 0:
        raise IndexError(f"{frames_file}: frame indices {min(indices)}..{max(indices)} outside 0..{array.shape[0] - 1}")
    return torch.from_numpy(np.ascontiguousarray(array[indices]))
