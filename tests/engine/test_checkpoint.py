"""Training checkpoints are read without running code, and their RNG state round-trips."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from snl_video.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leave a cached Gaussian in numpy's state
    path = save_checkpoint({"model": {}, "rng": capture_rng_state()}, tmp_path / "last.pt")
    expected = (random.random(), np.random.randn(2).tolist(), torch.rand(2).tolist())
    random.random(), np.random.randn(7), torch.rand(9)  # move every generator on
    restore_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.randn(2).tolist(), torch.rand(2).tolist()) == expected


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "last.pt"
    torch.save({"model": {}, "extra": _RunsCode(str(marker))}, path)
    with pytest.raises(ValueError, match="could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint({"model": {"w": torch.randn(100, 100)}}, tmp_path / "last.pt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_checkpoint(path)
