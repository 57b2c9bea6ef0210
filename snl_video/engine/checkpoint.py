"""Training checkpoints: atomic writes and the RNG state that makes ``--resume`` exact.

A checkpoint is one ``torch.save`` dict holding the model, optimizer, LR scheduler and
GradScaler states, the number of finished epochs and the RNG states (python, numpy,
torch CPU and CUDA). It also describes itself (:func:`checkpoint_metadata`): the resolved
recipe as plain data, the class names and the :class:`~snl_video.inputspec.InputSpec` the
network was trained on (``"input_spec"``, its :meth:`~snl_video.inputspec.InputSpec.to_dict`),
so ``predict`` / ``eval`` / ``export`` need nothing but the file; all of it is tensors and
plain Python values, so it still reads with ``weights_only=True``. Checkpoints of format 1
(separate ``normalization`` and ``clip`` dicts) read the same; checkpoints written before
any self-description still load: :func:`checkpoint_recipe` then asks for ``--config``.
It is written to a temporary name in the same folder, flushed and
moved into place with :func:`os.replace`, so a run killed mid-write leaves the previous
checkpoint intact instead of a truncated file.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..fileio import atomic_torch_save
from ..inputspec import InputSpec
from ..errors import InvalidValueError, MissingFileError
from ..weights.errors import CheckpointReadError, UnsafeCheckpointError
from ..weights.io import read_checkpoint_file

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..data.transforms import NormalizationSpec

logger = logging.getLogger(__name__)

__all__ = ["capture_rng_state", "restore_rng_state", "save_checkpoint", "load_training_checkpoint", "load_checkpoint",
           "LAST", "BEST", "checkpoint_input_spec",
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
    numpy_state = np.random.get_state()
    assert isinstance(numpy_state, tuple)  # legacy form (the default) of the global MT19937 generator
    name, keys, pos, has_gauss, cached_gaussian = numpy_state
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


def _to_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor moved to ``device`` (containers rebuilt, the rest as is)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


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


def load_training_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_checkpoint`, without running code from it.

    Checkpoints hold tensors and plain Python values only, so they are read with
    ``torch.load(weights_only=True)``; a file that needs more (i.e. could run code) is
    refused. Foreign weights go through ``snl_video.weights`` (``pretrained:``).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist (train writes <output_dir>/checkpoints/{LAST})")
    try:  # the one safe reader: it tells a corrupt file, a non-checkpoint and an unsafe pickle apart
        state = read_checkpoint_file(path)
    except UnsafeCheckpointError as exc:
        raise InvalidValueError(
            f"{path} is not a plain snl-video training checkpoint: it needs Python objects beyond "
            f"tensors and containers, so loading it could run code ({str(exc).splitlines()[0]}). "
            "Only checkpoints written by `snl-video train` are read here."
        ) from None
    except CheckpointReadError as exc:
        raise InvalidValueError(str(exc)) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError, AttributeError,
            OverflowError) as exc:
        # A damaged file fails anywhere inside the unpickler (a garbled legacy pickle: IndexError
        # "pop from empty list"); every such failure is the same problem for the user.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidValueError(f"{path} is truncated or corrupt: {first}") from None
    if map_location != "cpu":
        state = _to_device(state, torch.device(map_location))
    if not isinstance(state, dict) or "model" not in state:
        raise InvalidValueError(f"{path} is not a training checkpoint of snl-video train (no 'model' entry); "
                         "foreign weights are --weights FILE for predict / features / explain / export / "
                         "spectrum / eval, and `pretrained: FILE` in the config to fine-tune from them")
    return state


#: Former name of :func:`load_training_checkpoint` (``snl_video.weights`` reads foreign files).
load_checkpoint = load_training_checkpoint


# --------------------------------------------------------------------------------------
# Self-describing checkpoints
# --------------------------------------------------------------------------------------

#: Version of the self-description stored under ``"snl_video"`` (absent in older checkpoints).
#: 1: ``normalization`` and ``clip`` dicts; 2: one ``input_spec`` dict. Both read.
CHECKPOINT_FORMAT = 2


def checkpoint_metadata(
    cfg: "ExperimentConfig",
    *,
    class_names: "Sequence[str] | None",
    normalization: "NormalizationSpec | None" = None,
    input_spec: InputSpec | None = None,
) -> dict[str, Any]:
    """What a checkpoint needs to be used on its own, as plain data (lists, dicts, scalars).

    ``recipe`` is the resolved config (:func:`~snl_video.config.config_to_dict`), so the
    model can be rebuilt without the YAML; ``class_names`` are in head order (``None``
    when the dataset did not name them); ``input_spec`` is the input the network was trained
    on (:meth:`InputSpec.to_dict`): given, or the recipe's clip with ``normalization``
    (default: the recipe's, :func:`~snl_video.engine.builders.normalization_from_config`).
    """
    from ..version import __version__
    from ..config import config_to_dict
    from .builders import input_spec_from_config

    if class_names is not None and len(class_names) != cfg.model.num_classes:
        raise InvalidValueError(f"{len(class_names)} class names for a {cfg.model.num_classes}-class head")
    if input_spec is None:
        input_spec = input_spec_from_config(cfg)
        if normalization is not None:
            input_spec = input_spec.replace(mean=normalization.mean, std=normalization.std,
                                            value_scale=float(normalization.value_scale))
    elif normalization is not None:
        raise ValueError("give input_spec or normalization, not both (the input spec holds the normalisation)")
    meta = {
        "snl_video": {"format": CHECKPOINT_FORMAT, "version": __version__},
        "recipe": config_to_dict(cfg),
        "class_names": [str(n) for n in class_names] if class_names is not None else None,
        "input_spec": input_spec.to_dict(),
    }
    prepared = prepared_frames_of(cfg)
    if prepared is not None:
        meta["prepared_frames"] = prepared
    return meta


def prepared_frames_of(cfg: "ExperimentConfig") -> dict[str, Any] | None:
    """``{"short_side", "storage"}`` of the prepared frames ``cfg`` trains and evaluates on
    (``data.backend: prepared``; read from its ``settings.json``), or None (a decoding
    backend, or a directory not reachable here). Inference on video files resizes the
    decoded frames the same way first, so ``predict`` scores what ``eval`` scores."""
    from ..data.prepare import read_prepared_settings

    if cfg.data.backend != "prepared":
        return None
    settings = read_prepared_settings(cfg.data.root)
    if settings is None or int(settings.get("short_side", 0)) <= 0:
        return None
    return {"short_side": int(settings["short_side"]), "storage": str(settings.get("storage", "npy"))}


def checkpoint_input_spec(state: dict[str, Any], *, path: str | os.PathLike[str] = "<checkpoint>") -> InputSpec | None:
    """The input spec a checkpoint stores (format 2 ``input_spec``, or format 1
    ``normalization`` + ``clip``), or ``None`` when it stores none (written before)."""
    data = state.get("input_spec")
    if isinstance(data, dict):
        return InputSpec.from_dict(data, where=f"{path}: input_spec")
    norm, clip = state.get("normalization"), state.get("clip")
    if isinstance(norm, dict) and isinstance(clip, dict):
        return InputSpec.from_legacy_checkpoint(norm, clip)
    return None


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
    from ..config import ExperimentConfig, config_with_overrides, load_config

    if isinstance(config, ExperimentConfig):
        if overrides:
            raise ValueError("overrides apply to a YAML recipe or a stored recipe, not to a config object")
        return config
    if config is not None:
        return load_config(config, overrides)
    recipe = state.get("recipe")
    if not isinstance(recipe, dict):
        raise InvalidValueError(
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
    return config_with_overrides(recipe, list(overrides), source=f"{path} (stored recipe)")


@dataclass(frozen=True)
class CheckpointDescription:
    """A checkpoint's recipe, class names and input spec."""

    recipe: "ExperimentConfig"
    class_names: list[str] | None
    input_spec: InputSpec
    self_describing: bool

    @property
    def normalization(self) -> "NormalizationSpec":
        """The input spec's mean / std / value scale."""
        from ..data.transforms import NormalizationSpec

        return NormalizationSpec.from_any(self.input_spec)


def describe_checkpoint(
    state: dict[str, Any],
    *,
    path: str | os.PathLike[str] = "<checkpoint>",
    config: "str | os.PathLike[str] | ExperimentConfig | None" = None,
    overrides: "Sequence[str]" = (),
) -> CheckpointDescription:
    """Recipe, class names and input spec of a checkpoint.

    The stored normalisation and class names win (they are what the network was trained
    with); the clip (frames, stride, crop) follows the recipe, so an override such as
    ``data.num_frames=32`` applies. An old checkpoint falls back to the recipe (``config``
    required) and to the prepared dataset's class names when they can be read.
    """
    from .builders import class_names as dataset_class_names, input_spec_from_config

    cfg = checkpoint_recipe(state, path=path, config=config, overrides=overrides)
    spec = input_spec_from_config(cfg)
    stored = checkpoint_input_spec(state, path=path)
    if stored is not None:
        spec = spec.replace(mean=stored.mean, std=stored.std, value_scale=stored.value_scale)
    names = state.get("class_names")
    if names is None:
        names = dataset_class_names(cfg)
    if names is not None and len(names) != cfg.model.num_classes:
        raise InvalidValueError(f"{path}: {len(names)} class names for a {cfg.model.num_classes}-class head")
    return CheckpointDescription(
        recipe=cfg,
        class_names=list(names) if names is not None else None,
        input_spec=spec,
        self_describing="recipe" in state,
    )
