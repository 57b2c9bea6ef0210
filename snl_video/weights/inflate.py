"""Inflate 2-D (ImageNet) convolution weights into 3-D ones, as I3D was initialised.

A ``(out, in, kh, kw)`` kernel becomes ``(out, in, kt, kh, kw)``. With ``"average"`` each
temporal slice is the 2-D kernel divided by ``kt``, so on a clip whose frames are all the
same (a "boring video") every 3-D conv outputs exactly what the 2-D conv outputs on one
frame, away from temporal zero padding. ``"center"`` puts the 2-D kernel in the middle
slice and zeros elsewhere, which has the same property and additionally keeps frames
independent at initialisation. Batch-norm and linear tensors are copied as they are.
"""

from __future__ import annotations

import logging
from typing import Literal, Mapping

import torch

from .errors import WeightsError

logger = logging.getLogger(__name__)

__all__ = ["InflateMethod", "inflate_conv_weight", "inflate_state_dict"]

InflateMethod = Literal["average", "center"]


def inflate_conv_weight(weight: torch.Tensor, time_kernel: int, *, method: InflateMethod = "average") -> torch.Tensor:
    """Turn a 2-D conv kernel ``(out, in, kh, kw)`` into a 3-D one ``(out, in, time_kernel, kh, kw)``."""
    if weight.dim() != 4:
        raise WeightsError(f"expected a 2-D conv weight of shape (out, in, kh, kw), got shape {tuple(weight.shape)}")
    if time_kernel < 1:
        raise WeightsError(f"time_kernel must be >= 1, got {time_kernel}")
    if method == "average":
        return weight.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel
    if method == "center":
        if time_kernel % 2 == 0:
            raise WeightsError(f"method='center' needs an odd time_kernel, got {time_kernel}; use method='average'")
        out = weight.new_zeros(weight.shape[0], weight.shape[1], time_kernel, *weight.shape[2:])
        out[:, :, time_kernel // 2] = weight
        return out
    raise WeightsError(f"unknown inflation method {method!r}; choose 'average' or 'center'")


def inflate_state_dict(
    state_2d: Mapping[str, torch.Tensor],
    target_shapes: Mapping[str, torch.Size | tuple[int, ...] | torch.Tensor],
    *,
    method: InflateMethod = "average",
) -> dict[str, torch.Tensor]:
    """Inflate every 2-D conv kernel of ``state_2d`` whose 3-D target differs only by time.

    ``target_shapes`` is the 3-D model's ``state_dict()`` (or a mapping of key → shape)
    under the *same* key names; each 4-D tensor whose target is 5-D with matching
    ``(out, in)`` and spatial sizes is inflated to the target's temporal size. Everything
    else (BN, the classifier, keys the target lacks) is returned unchanged, so shape
    mismatches such as a new head stay visible to the load report.
    """
    out: dict[str, torch.Tensor] = {}
    inflated = 0
    for key, value in state_2d.items():
        target = target_shapes.get(key)
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else tuple(target) if target else None
        if (
            shape is not None
            and value.dim() == 4
            and len(shape) == 5
            and shape[:2] == tuple(value.shape[:2])
            and shape[3:] == tuple(value.shape[2:])
        ):
            out[key] = inflate_conv_weight(value, shape[2], method=method)
            inflated += 1
        else:
            out[key] = value
    logger.info("inflated %d 2-D conv kernels to 3-D (method=%s)", inflated, method)
    return out
