"""Training checkpoints: atomic writes and the RNG state that makes ``--resume`` exact.

A checkpoint is one ``torch.save`` dict holding the model, optimizer, LR scheduler and
GradScaler states, the number of finished epochs and the RNG states (python, numpy,
torch CPU and CUDA). It is written to a temporary name in the same folder, flushed and
moved into place with :func:`os.replace`, so a run killed mid-write leaves the previous
checkpoint intact instead of a truncated file.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["capture_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint", "LAST", "BEST"]

#: File names inside ``<output_dir>/checkpoints/``.
LAST = "last.pt"
BEST = "best.pt"


def capture_rng_state() -> dict[str, Any]:
    """The state of every random generator the training loop draws from."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.debug("checkpoint written: %s", path)
    return path


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Our own files hold numpy RNG state and plain Python objects, so they are read with
    ``weights_only=False``: only load checkpoints you wrote (for foreign weights use
    ``snl_video.weights``, which reads them safely).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (train writes <output_dir>/checkpoints/{LAST})")
    state = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a training checkpoint of snl-video train (no 'model' entry); "
                         "to start from foreign weights set `pretrained:` in the config")
    return state
