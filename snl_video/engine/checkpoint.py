"""Training checkpoints: atomic writes and the RNG state that makes ``--resume`` exact.

A checkpoint is one ``torch.save`` dict holding the model, optimizer, LR scheduler and
GradScaler states, the number of finished epochs and the RNG states (python, numpy,
torch CPU and CUDA). It also describes itself (:func:`checkpoint_metadata`): the resolved
recipe as plain data, the class names, the input normalisation and the clip spec, so
``predict`` / ``eval`` / ``export`` need nothing but the file; all of it is tensors and
plain Python values, so it still reads with ``weights_only=True``. Checkpoints written
before that still load: :func:`checkpoint_recipe` then asks for ``--config``. It is written to a temporary name in the same folder, flushed and
moved into place with :func:`os.replace`, so a run killed mid-write leaves the previous
checkpoint intact instead of a truncated file.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..fileio import atomic_torch_save

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..data.transforms import NormalizationSpec

logger = logging.getLogger(__name__)

__all__ = ["capture_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint", "LAST", "BEST",
           "CHECKPOINT_FORMAT", "checkpoint_metadata", "checkpoint_recipe", "CheckpointDescription",
           "describe_checkpoint"]

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
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError, AttributeError,
            OverflowError) as exc:
        # A damaged file fails anywhere inside the unpickler (a garbled legacy pickle: IndexError
        # "pop from empty list"); every such failure is the same problem for the user.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is truncated or corrupt: {first}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a training checkpoint of snl-video train (no 'model' entry); "
                         "to start from foreign weights set `pretrained:` in the config")
    return state


# --------------------------------------------------------------------------------------
# Self-describing checkpoints
# --------------------------------------------------------------------------------------

#: Version of the self-description stored under ``"snl_video"`` (absent in older checkpoints).
CHECKPOINT_FORMAT = 1


def checkpoint_metadata(
    cfg: "ExperimentConfig",
    *,
    class_names: "Sequence[str] | None",
    normalization: "NormalizationSpec",
) -> dict[str, Any]:
    """What a checkpoint needs to be used on its own, as plain data (lists, dicts, scalars).

    ``recipe`` is the resolved config (:func:`~snl_video.config.config_to_dict`), so the
    model can be rebuilt without the YAML; ``class_names`` are in head order (``None``
    when the dataset did not name them); ``normalization`` and ``clip`` are the input the
    network was trained on (pixels scaled to ``[0, value_scale]``, minus ``mean``, divided
    by ``std``; ``num_frames`` frames ``sampling_stride`` apart, ``crop_size`` square).
    """
    from ..version import __version__
    from ..config import config_to_dict

    if class_names is not None and len(class_names) != cfg.model.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {cfg.model.num_classes}-class head")
    return {
        "snl_video": {"format": CHECKPOINT_FORMAT, "version": __version__},
        "recipe": config_to_dict(cfg),
        "class_names": [str(n) for n in class_names] if class_names is not None else None,
        "normalization": {
            "mean": [float(v) for v in normalization.mean],
            "std": [float(v) for v in normalization.std],
            "value_scale": float(normalization.value_scale),
        },
        "clip": {
            "num_frames": int(cfg.data.num_frames),
            "sampling_stride": int(cfg.data.sampling_stride),
            "crop_size": int(cfg.data.crop_size),
        },
    }


def checkpoint_recipe(
    state: dict[str, Any],
    *,
    path: str | os.PathLike[str] = "<checkpoint>",
    config: "str | os.PathLike[str] | ExperimentConfig | None" = None,
    overrides: "Sequence[str]" = (),
) -> "ExperimentConfig":
    """The recipe of a checkpoint: ``config`` when given (a YAML path or a config), else the
    one stored in the checkpoint. A checkpoint written before checkpoints described
    themselves has none: then ``config`` is required, and the error says so."""
    from ..config import ExperimentConfig, apply_overrides, config_from_dict, load_config

    if isinstance(config, ExperimentConfig):
        if overrides:
            raise ValueError("overrides apply to a YAML recipe or a stored recipe, not to a config object")
        return config
    if config is not None:
        return load_config(config, overrides)
    recipe = state.get("recipe")
    if not isinstance(recipe, dict):
        raise ValueError(
            f"{path} holds no recipe (it was written before snl-video checkpoints described themselves): "
            "pass --config RECIPE, the YAML it was trained with (its run folder has config.yaml)"
        )
    recipe = dict(recipe)
    pretrained = recipe.get("pretrained")
    source = pretrained.get("source") if isinstance(pretrained, dict) else pretrained
    if isinstance(source, str) and not Path(source).expanduser().is_file():
        from ..weights import list_weights

        if source not in list_weights():
            # the initial weights of training (a file on the training machine) are not needed to
            # rebuild the trained model: its weights are in the checkpoint
            logger.debug("%s: stored recipe's pretrained file %s is not here; not needed, dropped", path, source)
            recipe["pretrained"] = None
    raw, problems = apply_overrides(recipe, overrides)
    if problems:
        from ..config import ConfigError

        raise ConfigError(problems, source=f"{path} (stored recipe)")
    return config_from_dict(raw, source=f"{path} (stored recipe)")


@dataclass(frozen=True)
class CheckpointDescription:
    """A checkpoint's recipe and the facts needed to feed its model."""

    recipe: "ExperimentConfig"
    class_names: list[str] | None
    normalization: "NormalizationSpec"
    num_frames: int
    sampling_stride: int
    crop_size: int
    self_describing: bool


def describe_checkpoint(
    state: dict[str, Any],
    *,
    path: str | os.PathLike[str] = "<checkpoint>",
    config: "str | os.PathLike[str] | ExperimentConfig | None" = None,
    overrides: "Sequence[str]" = (),
) -> CheckpointDescription:
    """Recipe, class names, normalisation and clip spec of a checkpoint.

    Stored values win for the normalisation and class names (they are what the network
    was trained with); an old checkpoint falls back to the recipe (``config`` required)
    and to the prepared dataset's class names when they can be read.
    """
    from ..data.transforms import NormalizationSpec
    from .builders import class_names as dataset_class_names, normalization_from_config

    cfg = checkpoint_recipe(state, path=path, config=config, overrides=overrides)
    norm_data = state.get("normalization")
    norm = NormalizationSpec.from_any(norm_data) if isinstance(norm_data, dict) else normalization_from_config(cfg)
    names = state.get("class_names")
    if names is None:
        names = dataset_class_names(cfg)
    if names is not None and len(names) != cfg.model.num_classes:
        raise ValueError(f"{path}: {len(names)} class names for a {cfg.model.num_classes}-class head")
    return CheckpointDescription(
        recipe=cfg,
        class_names=list(names) if names is not None else None,
        normalization=norm,
        num_frames=cfg.data.num_frames,
        sampling_stride=cfg.data.sampling_stride,
        crop_size=cfg.data.crop_size,
        self_describing="recipe" in state,
    )
