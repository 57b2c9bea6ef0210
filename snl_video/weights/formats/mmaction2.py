"""mmaction2 recognizers (``ResNet3d`` backbone + ``I3DHead``: ``{'meta', 'state_dict', 'optimizer'}``).

Recognised by ``backbone.`` keys with a ``meta`` entry or ``cls_head.`` keys. ``backbone.``
is dropped, mmcv ``ConvModule``'s ``.conv`` / ``.bn`` → ``convZ`` / ``bnZ``
(``downsample.0`` / ``.1``), ``conv1`` → ``conv1`` / ``bn1``, ``cls_head.fc_cls`` → ``fc``.
mmaction2's ``NonLocal3d`` after residual block ``layerX.Y``
(``non_local_block.{g,theta,phi}[.0].conv``, ``conv_out.conv`` / ``conv_out.bn``) →
``nonlocal_blocks.layerX_after_Y.{g,theta,phi,w2,bn}``: snl_video's ``nl``
(``embedded_gaussian``) or ``nl_dot`` (``dot_product``) block with ``bias=True``,
``subsample=[1, 2, 2]`` (``sub_sample=True``), ``activation="none"`` and ``scale`` =
``use_scale`` is the same function (``snl_video.models.mmaction2_nonlocal_spec`` gives the
placement of the published I3D-NL configs). mmaction2's I3D stem also strides time by 2 in
``conv1`` and its max-pool, which pytorchvideo's i3d_r50 does not: the tensors are the same
shapes and load exactly, the clip length the weights were trained on differs.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from .base import (CheckpointFormat, StateDict, Unwrapped, container_metadata, keys_without_module, put_unique,
                   tensor_state)

__all__ = ["FORMAT", "convert_mmaction2"]

_CONVMODULE = {"conv": 0, "bn": 1}


def _recognise(container: Mapping[str, Any]) -> bool:
    sd = container.get("state_dict")
    if not isinstance(sd, Mapping) or not sd:
        return False
    keys = keys_without_module(sd)
    return any(k.startswith("backbone.") for k in keys) and (
        "meta" in container or any(k.startswith("cls_head.") for k in keys)
    )


def _unwrap(container: Mapping[str, Any], source: str) -> Unwrapped:
    state = tensor_state(container["state_dict"], where=f"{source}['state_dict']")
    meta = container_metadata(container.get("meta") or {}, ("epoch", "iter", "mmcv_version", "mmaction2_version", "config"))
    return Unwrapped(state, meta)


def convert_mmaction2(state: Mapping[str, Tensor]) -> StateDict:
    """mmaction2 ``ResNet3d`` backbone + ``I3DHead`` keys → ResNet3D keys (non-local kept, renamed under its block)."""
    out: StateDict = {}
    for key, value in state.items():
        k = key.removeprefix("module.")
        new = k
        if m := re.fullmatch(r"backbone\.conv1\.(conv|bn)\.(.+)", k):
            new = f"{'conv1' if m[1] == 'conv' else 'bn1'}.{m[2]}"
        elif m := re.fullmatch(r"backbone\.(layer\d\.\d+)\.conv(\d)\.(conv|bn)\.(.+)", k):
            new = f"{m[1]}.{'conv' if m[3] == 'conv' else 'bn'}{m[2]}.{m[4]}"
        elif m := re.fullmatch(r"backbone\.(layer\d\.\d+)\.downsample\.(conv|bn)\.(.+)", k):
            new = f"{m[1]}.downsample.{_CONVMODULE[m[2]]}.{m[3]}"
        elif m := re.fullmatch(r"backbone\.(layer\d)\.(\d+)\.non_local_block\.(g|theta|phi)(?:\.0)?\.conv\.(weight|bias)",
                               k):
            new = f"nonlocal_blocks.{m[1]}_after_{m[2]}.{m[3]}.{m[4]}"
        elif m := re.fullmatch(r"backbone\.(layer\d)\.(\d+)\.non_local_block\.conv_out\.(conv|bn)\.(.+)", k):
            new = f"nonlocal_blocks.{m[1]}_after_{m[2]}.{'w2' if m[3] == 'conv' else 'bn'}.{m[4]}"
        elif m := re.fullmatch(r"backbone\.(layer\d\.\d+\.non_local_block\..+)", k):
            new = m[1]  # a NonLocal3d part snl_video has no counterpart for (gaussian / concatenation modes)
        elif m := re.fullmatch(r"cls_head\.fc_cls\.(weight|bias)", k):
            new = f"fc.{m[1]}"
        put_unique(out, new, value, key)
    return out


FORMAT = CheckpointFormat(
    name="mmaction2",
    description="mmaction2 recognizer: 'state_dict' with backbone. / cls_head. keys",
    recognise=_recognise,
    unwrap=_unwrap,
    head_keys=("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"),
    convert=convert_mmaction2,
)
