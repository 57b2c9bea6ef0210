"""pytorchvideo hub X3D ``.pyth`` (``X3D_XS.pyth`` / ``X3D_S.pyth`` / ``X3D_M.pyth``:
``{'model_state': ...}`` holding a ``create_x3d`` state dict).

Keys onto :class:`snl_video.models.x3d.X3D`'s (``blocks.0`` stem, ``blocks.1..4`` stages,
``blocks.5`` head). pytorchvideo names the stem's spatial conv ``conv_t`` and its temporal
one ``conv_xy`` (they run in that order)::

    blocks.0.conv.conv_t | conv_xy | blocks.0.norm         → conv1.0 | conv1.1 | bn1
    blocks.S.res_blocks.I.branch2.conv_a|norm_a|conv_b     → layerS.I.conv1|bn1|conv2
    blocks.S.res_blocks.I.branch2.norm_b.0                 → layerS.I.bn2
    blocks.S.res_blocks.I.branch2.norm_b.1.block.0|2       → layerS.I.se.fc1|fc2
    blocks.S.res_blocks.I.branch2.conv_c|norm_c            → layerS.I.conv3|bn3
    blocks.S.res_blocks.I.branch1_conv|branch1_norm        → layerS.I.downsample.0|1
    blocks.5.pool.pre_conv|pre_norm|post_conv              → conv5|bn5|lin5
    blocks.5.proj                                          → fc

Recognised by its ``conv_t`` + ``conv_xy`` stem and projected-pool head, so it must come
before the single-pathway ``pytorchvideo`` record (which accepts any ``blocks.`` key).
"""

from __future__ import annotations

import re
from typing import Mapping, TypeVar

from .base import rename_keys
from .pytorchvideo import PYTORCHVIDEO_BLOCK_PARTS, pytorchvideo_format

__all__ = ["FORMAT", "pytorchvideo_x3d_key", "convert_pytorchvideo_x3d", "is_pytorchvideo_x3d"]

T = TypeVar("T")

_X3D_BLOCK_PARTS = {
    **{k: v for k, v in PYTORCHVIDEO_BLOCK_PARTS.items() if k != "branch2.norm_b"},
    "branch2.norm_b.0": "bn2",
    "branch2.norm_b.1.block.0": "se.fc1",
    "branch2.norm_b.1.block.2": "se.fc2",
}
_X3D_HEAD_PARTS = {"pool.pre_conv": "conv5", "pool.pre_norm": "bn5", "pool.post_conv": "lin5", "proj": "fc"}


def pytorchvideo_x3d_key(key: str) -> str:
    """The X3D key of a ``create_x3d`` key; raises ``KeyError`` naming ``key`` when it has no counterpart."""
    if m := re.fullmatch(r"blocks\.0\.conv\.(conv_t|conv_xy)\.(.+)", key):
        return f"conv1.{0 if m[1] == 'conv_t' else 1}.{m[2]}"
    if m := re.fullmatch(r"blocks\.0\.norm\.(.+)", key):
        return f"bn1.{m[1]}"
    if m := re.fullmatch(
        r"blocks\.([1-4])\.res_blocks\.(\d+)\.(branch2\.[\w.]+?|branch1_\w+)"
        r"\.(weight|bias|running_mean|running_var|num_batches_tracked)",
        key,
    ):
        if m[3] in _X3D_BLOCK_PARTS:
            return f"layer{m[1]}.{m[2]}.{_X3D_BLOCK_PARTS[m[3]]}.{m[4]}"
    if m := re.fullmatch(r"blocks\.5\.(pool\.\w+|proj)\.(.+)", key):
        if m[1] in _X3D_HEAD_PARTS:
            return f"{_X3D_HEAD_PARTS[m[1]]}.{m[2]}"
    raise KeyError(f"pytorchvideo X3D key {key!r} has no counterpart in snl_video's X3D")


def convert_pytorchvideo_x3d(state: Mapping[str, T]) -> dict[str, T]:
    """A ``create_x3d`` state dict with X3D keys, by :func:`~.base.rename_keys` (a key without a
    counterpart passes through, for the load report to name)."""
    return rename_keys(state, pytorchvideo_x3d_key)


def is_pytorchvideo_x3d(keys: "Mapping[str, object] | set[str] | list[str]") -> bool:
    """Whether ``keys`` look like a ``create_x3d`` state dict (a ``conv_t`` + ``conv_xy`` stem and a projected-pool head)."""
    return "blocks.0.conv.conv_t.weight" in keys and "blocks.5.pool.pre_conv.weight" in keys


FORMAT = pytorchvideo_format(
    name="pytorchvideo_x3d",
    description="pytorchvideo hub X3D .pyth: 'model_state' with blocks.0.conv.conv_t keys",
    looks_like=is_pytorchvideo_x3d,
    head_keys=("blocks.5.proj.weight", "blocks.5.proj.bias"),
    convert=convert_pytorchvideo_x3d,
)
