"""Fixtures: tiny generated MPEG-4 AVIs and official-format split lists (no downloads)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from snl_video.data.synthetic import encode_avi, make_synthetic_ucf101

from ..helpers import moving_frames


@pytest.fixture(scope="session")
def reference_videos(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    """Name -> (AVI path, the frames it was encoded from). GOP 12, with and without B-frames."""
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for name, kwargs in {"ip": dict(gop_size=12, max_b_frames=0), "ipb": dict(gop_size=10, max_b_frames=2)}.items():
        frames = moving_frames(50, seed=len(name))
        path = root / f"{name}.avi"
        encode_avi(frames, path, **kwargs)
        out[name] = (path, frames)
    return out


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory) -> Path:
    """A small synthetic UCF-101 tree (3 classes x 4 videos, ~24 frames). Treat as read-only."""
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_ucf101(root, num_classes=3, videos_per_class=4, video_frames=20, frame_jitter=6, seed=1, progress=False)


@pytest.fixture
def tree(synthetic_tree, tmp_path) -> Path:
    """A private copy of :func:`synthetic_tree` (tests break videos in it)."""
    dest = tmp_path / "src"
    shutil.copytree(synthetic_tree, dest)
    return dest
