"""pytorchvideo hub SlowFast R50 ``.pyth`` (``SLOWFAST_8x8_R50.pyth`` / ``SLOWFAST_4x16_R50.pyth``:
``{'model_state': ...}`` holding a ``create_slowfast`` state dict).

Keys onto :class:`snl_video.models.slowfast.SlowFast3D`'s (``blocks.0`` the two stems and
their fusion, ``blocks.1..4`` the stages and their fusions, ``blocks.5`` the parameter-free
pool-and-concat, ``blocks.6`` the head)::

    blocks.0.multipathway_blocks.{0,1}.conv|norm           → {slow,fast}.conv1|bn1
    blocks.S.multipathway_blocks.{0,1}.res_blocks.I.X      → {slow,fast}.layerS.I.<X as a ResNet3D block>
    blocks.0.multipathway_fusion.conv_fast_to_slow|norm    → laterals.stem.conv|bn
    blocks.S.multipathway_fusion.conv_fast_to_slow|norm    → laterals.layerS.conv|bn   (S = 1..3)
    blocks.6.proj                                          → fc

Recognised by its two-pathway stem with a fusion, so it must come before the single-pathway
``pytorchvideo`` record (which accepts any ``blocks.`` key).
"""

from __future__ import annotations

import re
from typing import Mapping, TypeVar

from .base import rename_keys
from .pytorchvideo import PYTORCHVIDEO_BLOCK_PARTS, pytorchvideo_format

__all__ = ["FORMAT", "pytorchvideo_slowfast_key", "convert_pytorchvideo_slowfast", "is_pytorchvideo_slowfast"]

T = TypeVar("T")

_PATHWAY = {"0": "slow", "1": "fast"}
_FUSION_PARTS = {"conv_fast_to_slow": "conv", "norm": "bn"}


def pytorchvideo_slowfast_key(key: str) -> str:
    """The SlowFast3D key of a ``create_slowfast`` (ResNet-50, two pathways) key.

    Raises ``KeyError`` naming ``key`` when it has no counterpart.
    """
    if m := re.fullmatch(r"blocks\.0\.multipathway_blocks\.([01])\.(conv|norm)\.(.+)", key):
        return f"{_PATHWAY[m[1]]}.{'conv1' if m[2] == 'conv' else 'bn1'}.{m[3]}"
    if m := re.fullmatch(
        r"blocks\.([1-4])\.multipathway_blocks\.([01])\.res_blocks\.(\d+)\.(branch2\.\w+|branch1_\w+)\.(.+)", key
    ):
        if m[4] in PYTORCHVIDEO_BLOCK_PARTS:
            return f"{_PATHWAY[m[2]]}.layer{m[1]}.{m[3]}.{PYTORCHVIDEO_BLOCK_PARTS[m[4]]}.{m[5]}"
    if m := re.fullmatch(r"blocks\.([0-3])\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(.+)", key):
        where = "stem" if m[1] == "0" else f"layer{m[1]}"
        return f"laterals.{where}.{_FUSION_PARTS[m[2]]}.{m[3]}"
    if m := re.fullmatch(r"blocks\.6\.proj\.(weight|bias)", key):
        return f"fc.{m[1]}"
    raise KeyError(f"pytorchvideo SlowFast key {key!r} has no counterpart in snl_video's SlowFast3D")


def convert_pytorchvideo_slowfast(state: Mapping[str, T]) -> dict[str, T]:
    """A ``create_slowfast`` state dict with SlowFast3D keys, by :func:`~.base.rename_keys` (a key without a
    counterpart passes through, for the load report to name)."""
    return rename_keys(state, pytorchvideo_slowfast_key)


def is_pytorchvideo_slowfast(keys: "Mapping[str, object] | set[str] | list[str]") -> bool:
    """Whether ``keys`` look like a ``create_slowfast`` state dict (a two-pathway stem with a fusion)."""
    return ("blocks.0.multipathway_blocks.1.conv.weight" in keys
            and "blocks.0.multipathway_fusion.conv_fast_to_slow.weight" in keys)


FORMAT = pytorchvideo_format(
    name="pytorchvideo_slowfast",
    description="pytorchvideo hub SlowFast .pyth: 'model_state' with blocks.N.multipathway_blocks keys",
    looks_like=is_pytorchvideo_slowfast,
    head_keys=("blocks.6.proj.weight", "blocks.6.proj.bias"),
    convert=convert_pytorchvideo_slowfast,
)
