"""Key maps from the reference implementations' state dicts to this toolkit's keys, per model.

Pure functions ``reference key -> toolkit key`` for a named model (a key that has no
counterpart is an error naming it), used by the parity tests. Checkpoint conversion uses the
per-format converters of :mod:`snl_video.weights.formats`, which read the stage positions
off the checkpoint instead; the part names and torchvision's map are theirs:

* Hara's 3D-ResNets-PyTorch: identical keys (only a DataParallel ``module.`` prefix may
  need stripping, which is the checkpoint loader's business).
* pytorchvideo (``create_resnet``): ``blocks.0.conv/norm`` → ``conv1``/``bn1``;
  ``blocks.<stage>.res_blocks.<i>.branch2.conv_a/b/c`` → ``layerK.<i>.conv1/2/3``,
  ``norm_a/b/c`` → ``bn1/2/3``, ``branch1_conv/norm`` → ``downsample.0/1``;
  ``blocks.<head>.proj`` → ``fc``. I3D and C2D have a parameter-free pool after res2
  at ``blocks.2``, so their stages are blocks 1, 3, 4, 5 and the head block 6; Slow's
  stages are blocks 1–4 and the head block 5.
* torchvision video ResNets: ``stem.0``/``stem.1`` → ``conv1``/``bn1`` (R(2+1)D:
  ``stem.0/1/3`` → ``conv1.0/1/3``, ``stem.4`` → ``bn1``); inside blocks
  ``convK.0.<rest>`` → ``convK.<rest>`` and ``convK.1`` → ``bnK``; ``downsample`` and
  ``fc`` unchanged.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from torch import Tensor

from snl_video.weights.formats.pytorchvideo import PYTORCHVIDEO_BLOCK_PARTS
from snl_video.weights.formats.torchvision_video import TORCHVISION_MODELS, torchvision_key
from ..errors import InvalidValueError

__all__ = ["pytorchvideo_key", "torchvision_key", "convert_state_dict", "PYTORCHVIDEO_STAGE_BLOCKS", "TORCHVISION_MODELS"]

# model name → (indices of blocks holding layer1..layer4, index of the head block)
PYTORCHVIDEO_STAGE_BLOCKS: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "i3d_r50": ((1, 3, 4, 5), 6),
    "c2d_r50": ((1, 3, 4, 5), 6),
    "slow_r50": ((1, 2, 3, 4), 5),
}


def pytorchvideo_key(key: str, *, model_name: str) -> str:
    """Toolkit key of pytorchvideo's ``key`` for hub model ``model_name``."""
    if model_name not in PYTORCHVIDEO_STAGE_BLOCKS:
        raise InvalidValueError(f"no pytorchvideo key map for {model_name!r}; known: {', '.join(PYTORCHVIDEO_STAGE_BLOCKS)}")
    stages, head = PYTORCHVIDEO_STAGE_BLOCKS[model_name]
    m = re.fullmatch(r"blocks\.0\.(conv|norm)\.(.+)", key)
    if m:
        return f"{'conv1' if m[1] == 'conv' else 'bn1'}.{m[2]}"
    m = re.fullmatch(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(branch2\.\w+|branch1_\w+)\.(.+)", key)
    if m and int(m[1]) in stages and m[3] in PYTORCHVIDEO_BLOCK_PARTS:
        return f"layer{stages.index(int(m[1])) + 1}.{m[2]}.{PYTORCHVIDEO_BLOCK_PARTS[m[3]]}.{m[4]}"
    m = re.fullmatch(r"blocks\.(\d+)\.proj\.(weight|bias)", key)
    if m and int(m[1]) == head:
        return f"fc.{m[2]}"
    raise KeyError(f"pytorchvideo key {key!r} of {model_name} has no counterpart in the toolkit's ResNet3D")


def convert_state_dict(state_dict: Mapping[str, Tensor], key_map: Callable[[str], str]) -> dict[str, Tensor]:
    """Apply ``key_map`` to every key; two keys mapping to one is an error."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        new = key_map(key)
        if new in out:
            raise KeyError(f"two reference keys map to {new!r}")
        out[new] = value
    return out
