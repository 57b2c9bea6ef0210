"""Key maps from pytorchvideo's ``create_slowfast`` and ``create_x3d`` state dicts (and so its
released ``SLOWFAST_*_R50.pyth`` / ``X3D_*.pyth`` checkpoints, whose ``model_state`` holds
them) to :class:`~.slowfast.SlowFast3D` and :class:`~.x3d.X3D` keys.

Pure functions with no model and no torch state, so each can become a checkpoint-format
record (recognise with :func:`is_pytorchvideo_slowfast` / :func:`is_pytorchvideo_x3d`,
convert with :func:`convert_pytorchvideo_slowfast` / :func:`convert_pytorchvideo_x3d`).
A key without a counterpart is an error naming it.

SlowFast (``blocks.0`` stems + fusion, ``blocks.1..4`` stages + fusion, ``blocks.5`` the
parameter-free pool-and-concat, ``blocks.6`` the head)::

    blocks.0.multipathway_blocks.{0,1}.conv|norm           → {slow,fast}.conv1|bn1
    blocks.S.multipathway_blocks.{0,1}.res_blocks.I.X      → {slow,fast}.layerS.I.<X as ResNet3D>
    blocks.0.multipathway_fusion.conv_fast_to_slow|norm    → laterals.stem.conv|bn
    blocks.S.multipathway_fusion.conv_fast_to_slow|norm    → laterals.layerS.conv|bn   (S = 1..3)
    blocks.6.proj                                          → fc

X3D (``blocks.0`` stem, ``blocks.1..4`` stages, ``blocks.5`` head). pytorchvideo names the
stem's spatial conv ``conv_t`` and its temporal one ``conv_xy`` (they run in that order)::

    blocks.0.conv.conv_t | conv_xy | blocks.0.norm         → conv1.0 | conv1.1 | bn1
    blocks.S.res_blocks.I.branch2.conv_a|norm_a|conv_b     → layerS.I.conv1|bn1|conv2
    blocks.S.res_blocks.I.branch2.norm_b.0                 → layerS.I.bn2
    blocks.S.res_blocks.I.branch2.norm_b.1.block.0|2       → layerS.I.se.fc1|fc2
    blocks.S.res_blocks.I.branch2.conv_c|norm_c            → layerS.I.conv3|bn3
    blocks.S.res_blocks.I.branch1_conv|branch1_norm        → layerS.I.downsample.0|1
    blocks.5.pool.pre_conv|pre_norm|post_conv              → conv5|bn5|lin5
    blocks.5.proj                                          → fc
"""

from __future__ import annotations

import re
from typing import Mapping, TypeVar

__all__ = [
    "pytorchvideo_slowfast_key",
    "pytorchvideo_x3d_key",
    "convert_pytorchvideo_slowfast",
    "convert_pytorchvideo_x3d",
    "is_pytorchvideo_slowfast",
    "is_pytorchvideo_x3d",
]

T = TypeVar("T")

_PATHWAY = {"0": "slow", "1": "fast"}
_RES_BLOCK_PARTS = {
    "branch2.conv_a": "conv1",
    "branch2.norm_a": "bn1",
    "branch2.conv_b": "conv2",
    "branch2.norm_b": "bn2",
    "branch2.conv_c": "conv3",
    "branch2.norm_c": "bn3",
    "branch1_conv": "downsample.0",
    "branch1_norm": "downsample.1",
}
_X3D_BLOCK_PARTS = {
    **{k: v for k, v in _RES_BLOCK_PARTS.items() if k != "branch2.norm_b"},
    "branch2.norm_b.0": "bn2",
    "branch2.norm_b.1.block.0": "se.fc1",
    "branch2.norm_b.1.block.2": "se.fc2",
}
_FUSION_PARTS = {"conv_fast_to_slow": "conv", "norm": "bn"}
_X3D_HEAD_PARTS = {"pool.pre_conv": "conv5", "pool.pre_norm": "bn5", "pool.post_conv": "lin5", "proj": "fc"}


def pytorchvideo_slowfast_key(key: str) -> str:
    """:class:`~.slowfast.SlowFast3D` key of a ``create_slowfast`` (ResNet-50, two pathways) key."""
    if m := re.fullmatch(r"blocks\.0\.multipathway_blocks\.([01])\.(conv|norm)\.(.+)", key):
        return f"{_PATHWAY[m[1]]}.{'conv1' if m[2] == 'conv' else 'bn1'}.{m[3]}"
    if m := re.fullmatch(r"blocks\.([1-4])\.multipathway_blocks\.([01])\.res_blocks\.(\d+)\.(branch2\.\w+|branch1_\w+)\.(.+)", key):
        if m[4] in _RES_BLOCK_PARTS:
            return f"{_PATHWAY[m[2]]}.layer{m[1]}.{m[3]}.{_RES_BLOCK_PARTS[m[4]]}.{m[5]}"
    if m := re.fullmatch(r"blocks\.([0-3])\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(.+)", key):
        where = "stem" if m[1] == "0" else f"layer{m[1]}"
        return f"laterals.{where}.{_FUSION_PARTS[m[2]]}.{m[3]}"
    if m := re.fullmatch(r"blocks\.6\.proj\.(weight|bias)", key):
        return f"fc.{m[1]}"
    raise KeyError(f"pytorchvideo SlowFast key {key!r} has no counterpart in snl_video's SlowFast3D")


def pytorchvideo_x3d_key(key: str) -> str:
    """:class:`~.x3d.X3D` key of a ``create_x3d`` key."""
    if m := re.fullmatch(r"blocks\.0\.conv\.(conv_t|conv_xy)\.(.+)", key):
        return f"conv1.{0 if m[1] == 'conv_t' else 1}.{m[2]}"
    if m := re.fullmatch(r"blocks\.0\.norm\.(.+)", key):
        return f"bn1.{m[1]}"
    if m := re.fullmatch(r"blocks\.([1-4])\.res_blocks\.(\d+)\.(branch2\.[\w.]+?|branch1_\w+)\.(weight|bias|running_mean|running_var|num_batches_tracked)", key):
        if m[3] in _X3D_BLOCK_PARTS:
            return f"layer{m[1]}.{m[2]}.{_X3D_BLOCK_PARTS[m[3]]}.{m[4]}"
    if m := re.fullmatch(r"blocks\.5\.(pool\.\w+|proj)\.(.+)", key):
        if m[1] in _X3D_HEAD_PARTS:
            return f"{_X3D_HEAD_PARTS[m[1]]}.{m[2]}"
    raise KeyError(f"pytorchvideo X3D key {key!r} has no counterpart in snl_video's X3D")


def _convert(state: Mapping[str, T], key_map) -> dict[str, T]:  # type: ignore[no-untyped-def]
    out: dict[str, T] = {}
    for key, value in state.items():
        new = key_map(key)
        if new in out:
            raise KeyError(f"two pytorchvideo keys map to {new!r} (the second is {key!r})")
        out[new] = value
    return out


def convert_pytorchvideo_slowfast(state: Mapping[str, T]) -> dict[str, T]:
    """A ``create_slowfast`` state dict with :class:`~.slowfast.SlowFast3D` keys (values untouched)."""
    return _convert(state, pytorchvideo_slowfast_key)


def convert_pytorchvideo_x3d(state: Mapping[str, T]) -> dict[str, T]:
    """A ``create_x3d`` state dict with :class:`~.x3d.X3D` keys (values untouched)."""
    return _convert(state, pytorchvideo_x3d_key)


def is_pytorchvideo_slowfast(keys: "Mapping[str, object] | set[str]") -> bool:
    """Whether ``keys`` look like a ``create_slowfast`` state dict (a two-pathway stem with a fusion)."""
    return "blocks.0.multipathway_blocks.1.conv.weight" in keys and "blocks.0.multipathway_fusion.conv_fast_to_slow.weight" in keys


def is_pytorchvideo_x3d(keys: "Mapping[str, object] | set[str]") -> bool:
    """Whether ``keys`` look like a ``create_x3d`` state dict (a ``conv_t`` + ``conv_xy`` stem and a projected-pool head)."""
    return "blocks.0.conv.conv_t.weight" in keys and "blocks.5.pool.pre_conv.weight" in keys
