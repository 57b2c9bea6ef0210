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
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..fileio import atomic_torch_save

logger = logging.getLogger(__name__)

__all__ = ["capture_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint", "LAST", "BEST"]

#: File names inside ``<output_dir>/checkpoints/``.
LAST = "last.pt"
BEST = "best.pt"


def capture_rng_state() -> dict[str, Any]:
    """The state of every random generator the training loop draws from.

    Held as tensors and plain Python values only, so a checkpoint reads back with
    ``torch.load(weights_only=True)`` (numpy's state is an ndarray: stored as a tensor).
    """
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` returned."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + ``os.replace``)."""
    path = atomic_torch_save(state, path)
    logger.debug("checkpoint written: %s", path)
    return path


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, without running code from it.

    Checkpoints hold tensors and plain Python values only, so they are read with
    ``torch.load(weights_only=True)``; a file that needs more (i.e. could run code) is
    refused. Foreign weights go through ``snl_video.weights`` (``pretrained:``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (train writes <output_dir>/checkpoints/{LAST})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path} is not a plain snl-video training checkpoint: it needs Python objects beyond "
            f"tensors and containers, so loading it could run code ({str(exc).splitlines()[0]}). "
            "Only checkpoints written by `snl-video train` are read here."
        ) from None
    except (RuntimeError, EOFError) as exc:
        raise ValueError(f"{path} is truncated or corrupt: {exc}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a training checkpoint of snl-video train (no 'model' entry); "
                         "to start from foreign weights set `pretrained:` in the config")
    return state
