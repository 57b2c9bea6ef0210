"""Caffe2 / Detectron video ResNets (``.pkl``: ``{'blobs': {name: ndarray}, ...}``).

Blob names: ``conv1_w``, ``res_conv1_bn_{s,b,rm,riv}``, ``resS_J_branch2{a,b,c}_w`` /
``_bn_*``, ``resS_J_branch1_w`` / ``_bn_*``, ``pred_w`` / ``pred_b``; BN ``_s``/``_b``/
``_rm``/``_riv`` are ``weight``/``bias``/``running_mean``/``running_var``. Solver blobs
(momenta, learning rate, iteration) are dropped on unwrapping. Caffe2 keeps no batch
counter, so every converted BN gets ``num_batches_tracked = 0`` (it only matters for
momentum-free BN, which no model here uses).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import UnknownFormatError
from .base import CheckpointFormat, StateDict, Unwrapped, put_unique

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "convert_caffe2"]

# Caffe2 blobs that are optimiser or solver state, not weights.
_NON_WEIGHT = re.compile(r"(_momentum$|^lr$|^model_iter$|^iter$|^lr_)")
_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_BRANCH2 = {"a": "1", "b": "2", "c": "3"}


def _recognise(container: Mapping[str, Any]) -> bool:
    return isinstance(container.get("blobs"), Mapping)


def _unwrap(container: Mapping[str, Any], source: str) -> Unwrapped:
    state: StateDict = {}
    skipped: list[str] = []
    for name, value in container["blobs"].items():
        if _NON_WEIGHT.search(str(name)):
            skipped.append(str(name))
            continue
        if not isinstance(value, np.ndarray):
            raise UnknownFormatError(
                f"{source}: Caffe2 blob {name!r} is a {type(value).__name__}, expected a numpy array"
            )
        if value.dtype.kind not in "fiub":
            raise UnknownFormatError(f"{source}: Caffe2 blob {name!r} has unsupported dtype {value.dtype}")
        state[str(name)] = torch.from_numpy(np.array(value, copy=True))
    if not state:
        raise UnknownFormatError(f"{source}: the Caffe2 'blobs' dict holds no weight arrays")
    if skipped:
        logger.debug("%s: skipped %d Caffe2 solver blobs (e.g. %s)", source, len(skipped), skipped[:3])
    return Unwrapped(state, {"skipped_blobs": len(skipped)})


def convert_caffe2(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Caffe2 video ResNet blob names → ResNet3D keys (BN ``_s/_b/_rm/_riv``; ``num_batches_tracked`` added as 0)."""
    out: StateDict = {}
    bn_modules: list[str] = []
    for key, value in state.items():
        new = key
        if key == "conv1_w":
            new = "conv1.weight"
        elif m := re.fullmatch(r"res_conv1_bn_(s|b|rm|riv)", key):
            new = f"bn1.{_BN[m[1]]}"
            bn_modules.append("bn1")
        elif m := re.fullmatch(r"res(\d)_(\d+)_branch2([abc])_w", key):
            new = f"layer{int(m[1]) - 1}.{m[2]}.conv{_BRANCH2[m[3]]}.weight"
        elif m := re.fullmatch(r"res(\d)_(\d+)_branch2([abc])_bn_(s|b|rm|riv)", key):
            module = f"layer{int(m[1]) - 1}.{m[2]}.bn{_BRANCH2[m[3]]}"
            new = f"{module}.{_BN[m[4]]}"
            bn_modules.append(module)
        elif m := re.fullmatch(r"res(\d)_(\d+)_branch1_w", key):
            new = f"layer{int(m[1]) - 1}.{m[2]}.downsample.0.weight"
        elif m := re.fullmatch(r"res(\d)_(\d+)_branch1_bn_(s|b|rm|riv)", key):
            module = f"layer{int(m[1]) - 1}.{m[2]}.downsample.1"
            new = f"{module}.{_BN[m[3]]}"
            bn_modules.append(module)
        elif m := re.fullmatch(r"pred_(w|b)", key):
            new = f"fc.{'weight' if m[1] == 'w' else 'bias'}"
        put_unique(out, new, value, key)
    for module in dict.fromkeys(bn_modules):
        out.setdefault(f"{module}.num_batches_tracked", torch.zeros((), dtype=torch.long))
    return out


FORMAT = CheckpointFormat(
    name="caffe2",
    description="Caffe2 / Detectron .pkl: a 'blobs' dict of numpy arrays",
    recognise=_recognise,
    unwrap=_unwrap,
    head_keys=("pred_w", "pred_b"),
    convert=convert_caffe2,
)
