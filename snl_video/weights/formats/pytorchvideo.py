"""pytorchvideo hub ``.pyth`` ResNets (I3D / Slow / C2D R50: ``{'model_state': ...}``).

``blocks.0.conv/norm`` → ``conv1``/``bn1``; ``blocks.<stage>.res_blocks.J`` → ``layerK.J``
with the four stage blocks in ascending order (I3D / C2D: 1, 3, 4, 5 — a pool sits at
``blocks.2``; Slow: 1–4), inside them ``branch2.conv_a/b/c`` → ``conv1/2/3``, ``norm_a/b/c``
→ ``bn1/2/3``, ``branch1_conv/norm`` → ``downsample.0/1``; the last ``blocks.N.proj`` →
``fc``. The stage and head positions are read off the checkpoint's own keys, so one
converter serves every model of the family.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from torch import Tensor

from .base import (CheckpointFormat, Converter, StateDict, Unwrapped, container_metadata, keys_without_module, put_unique,
                   tensor_state)

__all__ = ["FORMAT", "PYTORCHVIDEO_BLOCK_PARTS", "convert_pytorchvideo", "pytorchvideo_format", "pytorchvideo_head_keys"]

#: Inside a pytorchvideo residual block: its part name → snl_video's.
PYTORCHVIDEO_BLOCK_PARTS: dict[str, str] = {
    "branch2.conv_a": "conv1",
    "branch2.norm_a": "bn1",
    "branch2.conv_b": "conv2",
    "branch2.norm_b": "bn2",
    "branch2.conv_c": "conv3",
    "branch2.norm_c": "bn3",
    "branch1_conv": "downsample.0",
    "branch1_norm": "downsample.1",
}


def _unwrap(container: Mapping[str, Any], source: str) -> Unwrapped:
    state = tensor_state(container["model_state"], where=f"{source}['model_state']")
    return Unwrapped(state, container_metadata(container, ("epoch", "cfg")))


def pytorchvideo_format(*, name: str, description: str, looks_like: Callable[[set[str]], bool],
                        head_keys: tuple[str, ...] | Callable[[Mapping[str, Tensor]], tuple[str, ...]],
                        convert: Converter) -> CheckpointFormat:
    """The record of a pytorchvideo hub ``.pyth`` family: every family's container is
    ``{'model_state': state dict, 'epoch', 'cfg'}`` and is unwrapped the same way; the families
    differ in how their keys look (``looks_like``, on the keys without a ``module.`` prefix),
    their head keys and their key converter."""

    def recognise(container: Mapping[str, Any]) -> bool:
        inner = container.get("model_state")
        return isinstance(inner, Mapping) and looks_like(set(keys_without_module(inner)))

    return CheckpointFormat(name=name, description=description, recognise=recognise, unwrap=_unwrap,
                            head_keys=head_keys, convert=convert)


def pytorchvideo_head_keys(state: Mapping[str, Tensor]) -> tuple[str, ...]:
    """The ``blocks.N.proj`` keys, by block index (the head is the last block)."""
    return tuple(sorted(
        (k for k in state if re.match(r"^blocks\.\d+\.proj\.(weight|bias)$", k)),
        key=lambda k: int(k.split(".")[1]),
    ))


def convert_pytorchvideo(state: Mapping[str, Tensor]) -> StateDict:
    """pytorchvideo hub ResNet keys (``blocks.N...``) → ResNet3D keys.

    The stage blocks are those holding ``res_blocks``, in ascending order, and the head is
    the highest-numbered ``blocks.N.proj``; this covers I3D/C2D (pool at ``blocks.2``,
    head ``blocks.6``) and Slow (head ``blocks.5``) without being told which it is.
    """
    stage_ids = sorted({int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.res_blocks\.", k))})
    head_ids = [int(m[1]) for k in state if (m := re.fullmatch(r"blocks\.(\d+)\.proj\.(?:weight|bias)", k))]
    head = max(head_ids) if head_ids else None
    out: StateDict = {}
    for key, value in state.items():
        new = key
        if m := re.fullmatch(r"blocks\.0\.(conv|norm)\.(.+)", key):
            new = f"{'conv1' if m[1] == 'conv' else 'bn1'}.{m[2]}"
        elif (m := re.fullmatch(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(branch2\.\w+|branch1_\w+)\.(.+)", key)) and (
            m[3] in PYTORCHVIDEO_BLOCK_PARTS and len(stage_ids) == 4
        ):
            new = f"layer{stage_ids.index(int(m[1])) + 1}.{m[2]}.{PYTORCHVIDEO_BLOCK_PARTS[m[3]]}.{m[4]}"
        elif (m := re.fullmatch(r"blocks\.(\d+)\.proj\.(weight|bias)", key)) and int(m[1]) == head:
            new = f"fc.{m[2]}"
        put_unique(out, new, value, key)
    return out


FORMAT = pytorchvideo_format(
    name="pytorchvideo",
    description="pytorchvideo hub .pyth: 'model_state' with blocks.N keys",
    looks_like=lambda keys: any(k.startswith("blocks.") for k in keys),
    head_keys=pytorchvideo_head_keys,
    convert=convert_pytorchvideo,
)
