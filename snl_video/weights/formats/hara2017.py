"""3D-ResNets-PyTorch (Hara et al.) 2017 release: ``{'epoch', 'arch', 'state_dict', 'optimizer'}``.

Written by DataParallel, so every key carries ``module.``; once it is stripped the names
are snl_video's r3d names (``conv1``, ``bn1``, ``layerX.Y.convZ``, ``layerX.Y.downsample.0/1``,
``fc``): the converter is the identity. Recognised by ``arch`` beside a ``state_dict`` and
no ``scheduler`` (which the 2020 release adds); FFC, BAT and mmaction2 containers, which
may also carry ``arch``, come earlier in the detection order.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import UnknownFormatError
from .base import CheckpointFormat, StateDict, Unwrapped, container_metadata, strip_prefix, tensor_state

__all__ = ["FORMAT", "convert_hara", "has_hara_container", "unwrap_hara"]


def has_hara_container(container: Mapping[str, Any]) -> bool:
    """A non-empty ``state_dict`` beside an ``arch`` entry, as both releases' ``main.py`` save it."""
    sd = container.get("state_dict")
    return isinstance(sd, Mapping) and bool(sd) and "arch" in container


def unwrap_hara(container: Mapping[str, Any], source: str) -> Unwrapped:
    """The state dict (``module.`` stripped) with ``epoch``, ``arch`` and whether the prefix was there."""
    sd = container.get("state_dict")
    if not isinstance(sd, Mapping):
        raise UnknownFormatError(f"{source}: expected a 'state_dict' mapping in a 3D-ResNets-PyTorch container")
    meta = container_metadata(container, ("epoch", "arch"))
    meta["had_module_prefix"] = all(str(k).startswith("module.") for k in sd)
    return Unwrapped(tensor_state(sd, where=f"{source}['state_dict']"), meta)


def convert_hara(state: StateDict) -> StateDict:
    """3D-ResNets-PyTorch keys → snl_video r3d keys: one-to-one once ``module.`` is gone."""
    return strip_prefix(state, "module.")


FORMAT = CheckpointFormat(
    name="hara2017",
    description="3D-ResNets-PyTorch 2017 release: 'state_dict' + 'arch', module. prefix",
    recognise=lambda container: has_hara_container(container) and "scheduler" not in container,
    unwrap=unwrap_hara,
    head_keys=("fc.weight", "fc.bias"),
    convert=convert_hara,
)
