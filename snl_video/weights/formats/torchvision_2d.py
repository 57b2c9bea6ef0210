"""torchvision ImageNet ResNets (2-D): a plain state dict with a 4-D ``conv1.weight``.

The names are already snl_video's (Hara kept torchvision's), so the converter is the
identity; the kernels stay 2-D here and :func:`snl_video.weights.inflate.inflate_state_dict`
makes them 3-D against the target model's shapes.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from .base import CheckpointFormat, StateDict, plain_state, strip_prefix, unwrap_plain_state

__all__ = ["FORMAT", "convert_torchvision_2d"]


def _recognise(container: Mapping[str, Any]) -> bool:
    found = plain_state(container)
    if found is None:
        return False
    state = strip_prefix(found[0], "module.")
    conv1 = state.get("conv1.weight")
    return conv1 is not None and conv1.dim() == 4 and any(k.startswith("layer1.0.conv1.") for k in state)


def convert_torchvision_2d(state: Mapping[str, Tensor]) -> StateDict:
    """torchvision ImageNet ResNet keys → snl_video r3d keys: the same names (2-D kernels, inflated later)."""
    return dict(state)


FORMAT = CheckpointFormat(
    name="torchvision_2d",
    description="torchvision ImageNet ResNet state dict (2-D, inflated on load)",
    recognise=_recognise,
    unwrap=unwrap_plain_state,
    head_keys=("fc.weight", "fc.bias"),
    convert=convert_torchvision_2d,
)
