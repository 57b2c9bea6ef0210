"""torchvision video ResNets (``r3d_18`` / ``mc3_18`` / ``r2plus1d_18``): a plain state dict.

Recognised by ``stem.0.weight`` with ``layer1.0.conv1.0.`` keys (at the top level or under a
common container key). ``stem.0``/``stem.1`` → ``conv1``/``bn1`` (R(2+1)D, recognised by its
factorised stem ``stem.3``: ``stem.0/1/3`` → ``conv1.0/1/3``, ``stem.4`` → ``bn1``); inside
blocks ``convK.0.<rest>`` → ``convK.<rest>`` and ``convK.1`` → ``bnK``; ``downsample`` and
``fc`` unchanged.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from .base import CheckpointFormat, StateDict, plain_state, put_unique, strip_prefix, unwrap_plain_state
from ...errors import InvalidValueError

__all__ = ["FORMAT", "TORCHVISION_MODELS", "torchvision_key", "convert_torchvision_video"]

TORCHVISION_MODELS: tuple[str, ...] = ("r3d_18", "mc3_18", "r2plus1d_18")


def torchvision_key(key: str, *, model_name: str) -> str:
    """snl_video's key for torchvision's video-ResNet ``key`` of model ``model_name`` (KeyError if none)."""
    if model_name not in TORCHVISION_MODELS:
        raise InvalidValueError(f"no torchvision key map for {model_name!r}; known: {', '.join(TORCHVISION_MODELS)}")
    m = re.fullmatch(r"stem\.(\d)\.(.+)", key)
    if m:
        index, rest = int(m[1]), m[2]
        if model_name == "r2plus1d_18":  # 0 conv, 1 bn, 3 conv: the factorised conv1; 4: bn1
            if index in (0, 1, 3):
                return f"conv1.{index}.{rest}"
            if index == 4:
                return f"bn1.{rest}"
        elif index in (0, 1):
            return f"{'conv1' if index == 0 else 'bn1'}.{rest}"
    m = re.fullmatch(r"(layer\d\.\d+)\.conv(\d)\.([01])\.(.+)", key)
    if m:
        return f"{m[1]}.conv{m[2]}.{m[4]}" if m[3] == "0" else f"{m[1]}.bn{m[2]}.{m[4]}"
    if re.fullmatch(r"layer\d\.\d+\.downsample\.[01]\..+|fc\.(weight|bias)", key):
        return key
    raise KeyError(f"torchvision key {key!r} of {model_name} has no counterpart in the toolkit's ResNet3D")


def is_torchvision_video_state(state: Mapping[str, Tensor]) -> bool:
    """torchvision's video stem (``stem.0``) with its ``convK.0`` sub-modules."""
    return "stem.0.weight" in state and any(k.startswith("layer1.0.conv1.0.") for k in state)


def _recognise(container: Mapping[str, Any]) -> bool:
    found = plain_state(container)
    return found is not None and is_torchvision_video_state(strip_prefix(found[0], "module."))


def convert_torchvision_video(state: Mapping[str, Tensor]) -> StateDict:
    """torchvision ``r3d_18`` / ``mc3_18`` / ``r2plus1d_18`` keys → ResNet3D keys (unknown keys pass through)."""
    model_name = "r2plus1d_18" if "stem.3.weight" in state else "r3d_18"
    out: StateDict = {}
    for key, value in state.items():
        try:
            new = torchvision_key(key, model_name=model_name)
        except KeyError:
            new = key
        put_unique(out, new, value, key)
    return out


FORMAT = CheckpointFormat(
    name="torchvision_video",
    description="torchvision r3d_18 / mc3_18 / r2plus1d_18 state dict (stem.N keys)",
    recognise=_recognise,
    unwrap=unwrap_plain_state,
    head_keys=("fc.weight", "fc.bias"),
    convert=convert_torchvision_video,
)
