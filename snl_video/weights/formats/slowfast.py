"""PySlowFast ``.pyth`` single-pathway ResNets (``{'model_state', 'optimizer_state', 'epoch', 'cfg'}``).

``s1.pathway0_stem.conv/bn`` → ``conv1``/``bn1``, ``sS.pathway0_resJ.branch2.{a,b,c}`` /
``{a,b,c}_bn`` → ``layer{S-1}.J.conv/bn{1,2,3}``, ``branch1`` / ``branch1_bn`` →
``downsample.0`` / ``.1``, ``head.projection`` → ``fc``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from .base import (CheckpointFormat, StateDict, Unwrapped, container_metadata, keys_without_module, put_unique,
                   tensor_state)

__all__ = ["FORMAT", "convert_slowfast"]

_BRANCH2 = {"a": "conv1", "b": "conv2", "c": "conv3", "a_bn": "bn1", "b_bn": "bn2", "c_bn": "bn3"}


def _recognise(container: Mapping[str, Any]) -> bool:
    inner = container.get("model_state")
    return isinstance(inner, Mapping) and any(k.startswith("s1.pathway0_stem.") for k in keys_without_module(inner))


def _unwrap(container: Mapping[str, Any], source: str) -> Unwrapped:
    state = tensor_state(container["model_state"], where=f"{source}['model_state']")
    return Unwrapped(state, container_metadata(container, ("epoch", "cfg")))


def convert_slowfast(state: Mapping[str, Tensor]) -> StateDict:
    """PySlowFast single-pathway ResNet keys (``s1.pathway0_stem``, ``sS.pathway0_resJ``) → ResNet3D keys."""
    out: StateDict = {}
    for key, value in state.items():
        new = key
        if m := re.fullmatch(r"s1\.pathway0_stem\.(conv|bn)\.(.+)", key):
            new = f"{'conv1' if m[1] == 'conv' else 'bn1'}.{m[2]}"
        elif m := re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch2\.(a|b|c|a_bn|b_bn|c_bn)\.(.+)", key):
            new = f"layer{int(m[1]) - 1}.{m[2]}.{_BRANCH2[m[3]]}.{m[4]}"
        elif m := re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch1(_bn)?\.(.+)", key):
            new = f"layer{int(m[1]) - 1}.{m[2]}.downsample.{1 if m[3] else 0}.{m[4]}"
        elif m := re.fullmatch(r"head\.projection\.(weight|bias)", key):
            new = f"fc.{m[1]}"
        put_unique(out, new, value, key)
    return out


FORMAT = CheckpointFormat(
    name="slowfast",
    description="PySlowFast .pyth: 'model_state' with s1.pathway0_stem / sS.pathway0_resJ keys",
    recognise=_recognise,
    unwrap=_unwrap,
    head_keys=("head.projection.weight", "head.projection.bias"),
    convert=convert_slowfast,
)
