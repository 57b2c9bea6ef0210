"""Fixtures: tiny generated MPEG-4 AVIs and official-format split lists (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snl_video.data.synthetic import encode_avi, make_synthetic_ucf101


def moving_frames(num_frames: int, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """Frames that all differ strongly: the bottom half writes the frame number in 6 black/white
    bit columns (any two frames differ in at least one 21x48 block), the top half has a bar
    moving over noise (motion for the codec to predict)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 120, size=(height // 4, width // 4, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((4, 4, 1), np.uint8))
    frames = np.repeat(base[None], num_frames, axis=0)
    assert num_frames <= 64
    column = width // 6
    for t in range(num_frames):
        x = (5 * t) % (width - 8)
        frames[t, : height // 2, x : x + 8] = 255
        for bit in range(6):
            frames[t, height // 2 :, bit * column : (bit + 1) * column] = 255 if (t >> bit) & 1 else 0
    return frames


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
