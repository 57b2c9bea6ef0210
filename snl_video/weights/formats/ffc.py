"""pkumivision/FFC ImageNet FFC-ResNets (``main.py``'s ``{'epoch', 'arch', 'state_dict', 'best_acc1', 'optimizer'}``).

Recognised by the ``.ffc.conv`` in its keys, under ``state_dict`` or as a bare state dict
(checked before Hara's formats, whose containers also have ``arch``). The FFC backbones
keep the released module names, so the keys map one-to-one once the DataParallel
``module.`` prefix is gone; the optimizer state is ignored, ``best_acc1`` kept as
metadata. The kernels stay 2-D; the generic loader inflates them.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from .base import (CheckpointFormat, StateDict, Unwrapped, container_metadata, keys_without_module, state_dict_or_bare,
                   strip_prefix, tensor_state)

__all__ = ["FORMAT", "convert_ffc"]


def _recognise(container: Mapping[str, Any]) -> bool:
    found = state_dict_or_bare(container)
    return found is not None and any(".ffc.conv" in k for k in keys_without_module(found[0]))


def _unwrap(container: Mapping[str, Any], source: str) -> Unwrapped:
    found = state_dict_or_bare(container)
    assert found is not None  # recognised
    sd, in_container = found
    if not in_container:
        return Unwrapped(strip_prefix(sd, "module."), {})
    meta = container_metadata(container, ("epoch", "arch"))
    best = container.get("best_acc1")
    if isinstance(best, (int, float)) or isinstance(best, torch.Tensor) and best.numel() == 1:
        meta["best_acc1"] = float(best)
    meta["had_module_prefix"] = all(str(k).startswith("module.") for k in sd)
    return Unwrapped(tensor_state(sd, where=f"{source}['state_dict']"), meta)


def convert_ffc(state: Mapping[str, Tensor]) -> StateDict:
    """pkumivision/FFC keys → FFC backbone keys: the same names, ``module.`` dropped if every key has it."""
    return strip_prefix(state, "module.")


FORMAT = CheckpointFormat(
    name="ffc",
    description="pkumivision/FFC ImageNet FFC-ResNet (keys with .ffc.conv; 2-D, inflated on load)",
    recognise=_recognise,
    unwrap=_unwrap,
    head_keys=("fc.weight", "fc.bias"),
    convert=convert_ffc,
)
