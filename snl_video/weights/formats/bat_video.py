"""BA-Transform/BAT-Video-Classification Kinetics C2D / I3D ResNet-50 (``{'epoch', 'arch', 'state_dict', 'best_prec1', 'optim'}``).

Recognised by its head — ``fc`` is a 1×1×1 Conv3d (5-D weight) — or by its non-local
blocks inside the stages (``layerX.nlJ``), under ``state_dict`` or as a bare state dict.
The backbone keys are ours already; ``fc.weight`` ``(K, 2048, 1, 1, 1)`` becomes the
Linear's ``(K, 2048)``; ``layerX.nlJ.<rest>`` (after residual block J) becomes
``nonlocal_blocks.layerX_after_J.<rest>`` (snl_video's ``bat`` block keeps the released
inner names ``conv1``, ``batransform.*``, ``conv2``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import WeightsLoadError
from .base import (CheckpointFormat, StateDict, Unwrapped, container_metadata, put_unique, state_dict_or_bare,
                   strip_prefix, tensor_state)

__all__ = ["FORMAT", "convert_bat_video", "is_bat_video_state"]

_NONLOCAL_KEY = re.compile(r"^(?:module\.)?layer\d\.nl\d+\.")


def is_bat_video_state(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` has BAT-Video-Classification's 5-D ``fc`` head or its in-stage ``layerX.nlJ`` blocks."""
    fc = state.get("fc.weight", state.get("module.fc.weight"))
    if isinstance(fc, torch.Tensor) and fc.dim() == 5:
        return True
    return any(_NONLOCAL_KEY.match(str(k)) for k in state)


def _recognise(container: Mapping[str, Any]) -> bool:
    found = state_dict_or_bare(container)
    return found is not None and is_bat_video_state(found[0])


def _unwrap(container: Mapping[str, Any], source: str) -> Unwrapped:
    found = state_dict_or_bare(container)
    assert found is not None  # recognised
    sd, in_container = found
    if not in_container:
        return Unwrapped(strip_prefix(sd, "module."), {})
    return Unwrapped(tensor_state(sd, where=f"{source}['state_dict']"),
                     container_metadata(container, ("epoch", "arch", "best_prec1")))


def convert_bat_video(state: Mapping[str, Tensor]) -> StateDict:
    """BAT-Video-Classification keys → ``bat_c2d_r50`` / ``bat_i3d_r50`` keys (see the module docstring)."""
    out: StateDict = {}
    for key, value in state.items():
        new = key.removeprefix("module.")
        if new == "fc.weight" and value.dim() == 5:
            if tuple(value.shape[2:]) != (1, 1, 1):
                raise WeightsLoadError(f"BAT checkpoint head fc.weight has shape {tuple(value.shape)}, expected (K, C, 1, 1, 1)")
            value = value.reshape(value.shape[0], value.shape[1])
        elif m := re.fullmatch(r"(layer\d)\.nl(\d+)\.(.+)", new):
            new = f"nonlocal_blocks.{m[1]}_after_{m[2]}.{m[3]}"
        put_unique(out, new, value, key)
    return out


FORMAT = CheckpointFormat(
    name="bat_video",
    description="BAT-Video-Classification ResNet-50 (1x1x1 Conv3d fc, layerX.nlJ blocks)",
    recognise=_recognise,
    unwrap=_unwrap,
    head_keys=("fc.weight", "fc.bias"),
    convert=convert_bat_video,
)
