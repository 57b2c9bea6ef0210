"""Loading a training checkpoint into the model a config builds, with a one-line error when it does not fit.

``model.load_state_dict`` on a checkpoint of another recipe (the SNL checkpoint evaluated
with the baseline recipe, an r3d18 run with an r3d50 config, a 6-class head) raises a
traceback with kilobytes of size mismatches. :func:`load_model_state` compares keys and
shapes first and, when they differ, raises :class:`CheckpointMismatchError`: which tensors
differ (grouped, a few named), and what the checkpoint was made with — from the recipe the
checkpoint carries when it has one, else from its run folder's ``config.yaml``, else from
the tensors themselves (head size, non-local blocks) — and the config to evaluate it with.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["CheckpointMismatchError", "load_model_state", "describe_recipe", "state_mismatch"]


class CheckpointMismatchError(InvalidValueError):
    """A training checkpoint's tensors do not fit the model of the config given."""


def _shape(value: Any) -> tuple[int, ...] | None:
    return tuple(value.shape) if hasattr(value, "shape") else None


def _names(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _blocks(keys: Any) -> list[str]:
    return sorted({k.split(".")[1] for k in keys if k.startswith("nonlocal_blocks.") and k.count(".") >= 2})


def describe_recipe(recipe: Mapping[str, Any]) -> str:
    """``model r3d50, snl blocks, 101 classes`` from a config mapping (as in config.yaml)."""
    model = recipe.get("model") or {}
    blocks = recipe.get("nonlocal_blocks")
    kind = blocks.get("kind") if isinstance(blocks, Mapping) else blocks
    parts = [f"model {model.get('name', '?')}", f"{kind} blocks" if kind else "no non-local blocks"]
    if model.get("num_classes") is not None:
        parts.append(f"{model['num_classes']} classes")
    return ", ".join(parts)


def _checkpoint_origin(state: Mapping[str, Any], checkpoint: Path) -> tuple[str, Path | None]:
    """What the checkpoint says it was made with, and the config file to evaluate it with (if known)."""
    import yaml

    run_config = checkpoint.resolve().parent.parent / "config.yaml"
    for key in ("recipe", "config"):  # a self-describing checkpoint carries its recipe
        recipe = state.get(key)
        if isinstance(recipe, Mapping) and "model" in recipe:
            name = recipe.get("name", state.get("config_name", "?"))
            beside = run_config if checkpoint.resolve().parent.name == "checkpoints" and run_config.is_file() else None
            return f"recipe {name!r} ({describe_recipe(recipe)}, stored in the checkpoint)", beside
    if checkpoint.resolve().parent.name == "checkpoints" and run_config.is_file():
        try:
            recipe = yaml.safe_load(run_config.read_text())
        except (OSError, yaml.YAMLError):
            recipe = None
        if isinstance(recipe, Mapping):
            return f"recipe {recipe.get('name', '?')!r} ({describe_recipe(recipe)}, {run_config})", run_config
    name = state.get("config_name")
    tensors = state.get("model", {})
    head = _shape(tensors.get("fc.weight")) if isinstance(tensors, Mapping) else None
    blocks = _blocks(tensors) if isinstance(tensors, Mapping) else []
    facts = ([f"a {head[0]}-class head"] if head else []) + [f"non-local blocks at {', '.join(blocks)}" if blocks
                                                             else "no non-local blocks"]
    return (f"recipe {name!r} " if name else "") + f"({', '.join(facts)})", None


def state_mismatch(own: Mapping[str, Any], theirs: Mapping[str, Any]) -> str | None:
    """How the tensors ``theirs`` (a file's) differ from ``own`` (a model's state dict) in names
    and shapes, as one phrase for an error message; ``None`` when every name and shape fits."""
    missing = [k for k in own if k not in theirs]
    unexpected = [k for k in theirs if k not in own]
    shaped = [k for k in own if k in theirs and _shape(own[k]) != _shape(theirs[k])]
    if not (missing or unexpected or shaped):
        return None
    what = []
    if shaped:
        shown = "; ".join(f"{k}: checkpoint {list(_shape(theirs[k]) or [])} vs model {list(_shape(own[k]) or [])}"
                          for k in shaped[:3])
        what.append(f"{len(shaped)} of another shape ({shown}{f' and {len(shaped) - 3} more' if len(shaped) > 3 else ''})")
    if missing:
        what.append(f"{len(missing)} missing from the checkpoint ({_names(missing)})")
    if unexpected:
        what.append(f"{len(unexpected)} not in the model ({_names(unexpected)})")
    return "; ".join(what)


def load_model_state(model: nn.Module, state: Mapping[str, Any], *, checkpoint: str | os.PathLike[str],
                     model_desc: str = "") -> None:
    """``model.load_state_dict(state["model"])`` after checking that every key and shape matches.

    Raises:
        CheckpointMismatchError: one line naming the differing tensors, what the checkpoint
            was made with and the config to use.
    """
    checkpoint = Path(checkpoint)
    theirs = state["model"]
    mismatch = state_mismatch(model.state_dict(), theirs)
    if mismatch is not None:
        origin, run_config = _checkpoint_origin(state, checkpoint)
        stored = any(isinstance(state.get(k), Mapping) for k in ("recipe", "config"))
        if run_config is not None:
            fix = f"evaluate it with --config {run_config}" + (" or without --config" if stored else "")
        else:
            fix = ("evaluate it without --config (it carries its recipe)" if stored
                   else "evaluate it with the recipe it was trained with")
        raise CheckpointMismatchError(
            f"{checkpoint} does not fit the model of this config{f' ({model_desc})' if model_desc else ''}: "
            f"tensors {mismatch}. The checkpoint was made with {origin}: {fix}")
    model.load_state_dict(theirs)
