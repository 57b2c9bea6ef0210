"""Any dict of tensors, at the top level or under a common container key (the last resort).

A generic state dict (e.g. one snl_video saved itself) is taken as already in the model's
names; the load report names whatever does not fit.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from .base import CheckpointFormat, StateDict, plain_state, unwrap_plain_state

__all__ = ["FORMAT", "convert_generic"]


def _recognise(container: Mapping[str, Any]) -> bool:
    return plain_state(container) is not None


def convert_generic(state: Mapping[str, Tensor]) -> StateDict:
    """The identity: a generic state dict is taken as already in the model's names."""
    return dict(state)


FORMAT = CheckpointFormat(
    name="generic",
    description="any dict of tensors (top level or under 'state_dict', 'model', ...)",
    recognise=_recognise,
    unwrap=unwrap_plain_state,
    head_keys=("fc.weight", "fc.bias"),
    convert=convert_generic,
)
