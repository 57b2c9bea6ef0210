"""torchvision's transformer and separable video models (``mvit_v2_s``, ``swin3d_t``, ``s3d``):
the plain state dicts torchvision publishes (``mvit_v2_s-ae3be167.pth`` ...).

snl_video adopts these models' own modules (:mod:`snl_video.models.torchvision_video`), so
the keys need no conversion; the record exists so such a file is recognised by name (not as
a generic dict), its classifier found (``head.1`` / ``head`` / ``classifier.1``) and its
class count read. Each model is recognised by its stem's key: ``conv_proj`` with a
``pos_encoding`` (MViT-v2), ``patch_embed.proj`` with ``features.`` stages (Swin3D),
``features.0.0.0`` with a ``classifier.1`` (S3D).
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from .base import CheckpointFormat, StateDict, plain_state, strip_prefix, unwrap_plain_state

__all__ = ["FORMAT", "BASELINE_HEADS", "torchvision_baseline_arch"]

#: Architecture → its classifier keys (weight first), as torchvision names them.
BASELINE_HEADS: dict[str, tuple[str, str]] = {
    "mvit_v2_s": ("head.1.weight", "head.1.bias"),
    "swin3d_t": ("head.weight", "head.bias"),
    "s3d": ("classifier.1.weight", "classifier.1.bias"),
}


def torchvision_baseline_arch(state: Mapping[str, Any]) -> str | None:
    """Which of torchvision's baselines ``state``'s keys are (``None`` when none)."""
    if "conv_proj.weight" in state and "pos_encoding.class_token" in state:
        return "mvit_v2_s"
    if "patch_embed.proj.weight" in state and any(k.startswith("features.") for k in state):
        return "swin3d_t"
    if "features.0.0.0.weight" in state and "classifier.1.weight" in state:
        return "s3d"
    return None


def _recognise(container: Mapping[str, Any]) -> bool:
    found = plain_state(container)
    return found is not None and torchvision_baseline_arch(strip_prefix(found[0], "module.")) is not None


def _head_keys(state: Mapping[str, Tensor]) -> tuple[str, ...]:
    arch = torchvision_baseline_arch(state)
    return BASELINE_HEADS[arch] if arch is not None else ()


def _identity(state: StateDict) -> StateDict:
    return dict(state)


FORMAT = CheckpointFormat(
    name="torchvision_baseline",
    description="torchvision mvit_v2_s / swin3d_t / s3d state dict (keys are the model's own)",
    recognise=_recognise,
    unwrap=unwrap_plain_state,
    head_keys=_head_keys,
    convert=_identity,
)
