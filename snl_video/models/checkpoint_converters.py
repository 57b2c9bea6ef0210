"""Key converters from the upstream checkpoint formats to snl_video's ResNet3D keys.

Each converter is a pure ``state -> state`` function registered with
:func:`snl_video.weights.formats.register_converter` when :mod:`snl_video.models` is
imported. A converter renames the keys it knows and passes any other key through
unchanged, so the load report lists it as unexpected (an error naming it, unless the
user ignores it) instead of the converter silently dropping it.

What each format maps to (the stage and head positions are read off the checkpoint's
own keys, so one converter serves every model of a family):

* ``pytorchvideo``: ``blocks.<stage>.res_blocks.J`` → ``layerK.J`` with the four stage
  blocks in ascending order (I3D / C2D: 1, 3, 4, 5 — a pool sits at ``blocks.2``; Slow:
  1–4), the last ``blocks.N.proj`` → ``fc``. Uses :func:`.reference_keys.pytorchvideo_key`.
* ``torchvision_video``: :func:`.reference_keys.torchvision_key`; R(2+1)D is recognised
  by its factorised stem (``stem.3``).
* ``mmaction2`` (ResNet3d + I3DHead): ``backbone.`` dropped, mmcv ``ConvModule``'s
  ``.conv`` / ``.bn`` → ``convZ`` / ``bnZ`` (``downsample.0`` / ``.1``), ``conv1`` →
  ``conv1`` / ``bn1``, ``cls_head.fc_cls`` → ``fc``. mmaction2's ``NonLocal3d`` after
  residual block ``layerX.Y`` (``non_local_block.{g,theta,phi}[.0].conv``,
  ``conv_out.conv`` / ``conv_out.bn``) → ``nonlocal_blocks.layerX_after_Y.{g,theta,phi,w2,bn}``:
  snl_video's ``nl`` (``embedded_gaussian``) or ``nl_dot`` (``dot_product``) block with
  ``bias=True`` (biased g/theta/phi), ``subsample=[1, 2, 2]`` (``sub_sample=True``),
  ``activation="none"`` (no ReLU after the output BN) and ``scale`` = ``use_scale`` is the
  same function (tested against a restatement); :func:`mmaction2_nonlocal_spec` gives the
  placement of the published I3D-NL configs. mmaction2's I3D stem also strides time by 2 in
  ``conv1`` and its max-pool (``conv1_stride_t=2, pool1_stride_t=2``), which pytorchvideo's
  i3d_r50 does not: the tensors are the same shapes and load exactly, the clip length the
  weights were trained on differs.
* ``slowfast`` (PySlowFast ``.pyth``): ``s1.pathway0_stem.conv/bn`` → ``conv1``/``bn1``,
  ``sS.pathway0_resJ.branch2.{a,b,c}`` / ``{a,b,c}_bn`` → ``layer{S-1}.J.conv/bn{1,2,3}``,
  ``branch1`` / ``branch1_bn`` → ``downsample.0`` / ``.1``, ``head.projection`` → ``fc``.
* ``ffc`` (pkumivision/FFC ImageNet ``ffc_resnet50``, ``main.py``'s container
  ``{'epoch', 'arch', 'state_dict', 'best_acc1', 'optimizer'}``, DataParallel ``module.``
  prefix): the FFC backbones keep the released module names, so the keys map one-to-one
  (prefix stripped by the detector; the optimizer state and ``best_acc1`` are ignored); the
  2-D kernels are inflated by the generic loader.
* ``bat_video`` (BA-Transform/BAT-Video-Classification, ``{'state_dict': ...}``): the
  backbone keys are ours already; ``fc.weight`` of their 1×1×1 Conv3d head
  ``(K, 2048, 1, 1, 1)`` becomes the Linear's ``(K, 2048)``; their blocks ``layerX.nlJ.<rest>``
  (inside the stage, after residual block J) become ``nonlocal_blocks.layerX_after_J.<rest>``
  (snl_video's ``bat`` block keeps the released inner names ``conv1``, ``batransform.*``,
  ``conv2``).
* ``caffe2`` (``.pkl`` blobs): ``conv1_w``, ``res_conv1_bn_{s,b,rm,riv}``,
  ``resS_J_branch2{a,b,c}_w`` / ``_bn_*``, ``resS_J_branch1_w`` / ``_bn_*``, ``pred_w`` /
  ``pred_b``; BN ``_s``/``_b``/``_rm``/``_riv`` → ``weight``/``bias``/``running_mean``/
  ``running_var``. Caffe2 keeps no batch counter, so every converted BN gets
  ``num_batches_tracked = 0`` (it only matters for momentum-free BN, which no model here uses).
"""

from __future__ import annotations

import logging
import re
from typing import Mapping

import torch
from torch import Tensor

from snl_video.weights.errors import WeightsLoadError
from snl_video.weights.formats import CONVERTERS, register_converter

from .reference_keys import _PTV_BLOCK_PARTS, torchvision_key

logger = logging.getLogger(__name__)

__all__ = [
    "convert_pytorchvideo",
    "convert_torchvision_video",
    "convert_mmaction2",
    "convert_slowfast",
    "convert_caffe2",
    "convert_ffc",
    "convert_bat_video",
    "check_nonlocal_keys",
    "mmaction2_nonlocal_spec",
    "register_checkpoint_converters",
]

StateDict = dict[str, Tensor]


def _put(out: StateDict, key: str, value: Tensor, original: str) -> None:
    if key in out:
        raise KeyError(f"two checkpoint keys map to {key!r} (the second is {original!r})")
    out[key] = value


def convert_pytorchvideo(state: Mapping[str, Tensor]) -> StateDict:
    """pytorchvideo hub ResNet keys (``blocks.N...``) → ResNet3D keys.

    The stage blocks are those holding ``res_blocks``, in ascending order, and the head is
    the highest-numbered ``blocks.N.proj``; this covers I3D/C2D (pool at ``blocks.2``,
    head ``blocks.6``) and Slow (head ``blocks.5``) without being told which it is.
    """
    stage_ids = sorted({int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.res_blocks\.", k))})
    head_ids = [int(m[1]) for k in state if (m := re.fullmatch(r"blocks\.(\d+)\.proj\.(?:weight|bias)", k))]
    head = max(head_ids) if head_ids else None
    out: StateDict = {}
    for key, value in state.items():
        new = key
        if m := re.fullmatch(r"blocks\.0\.(conv|norm)\.(.+)", key):
            new = f"{'conv1' if m[1] == 'conv' else 'bn1'}.{m[2]}"
        elif (m := re.fullmatch(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(branch2\.\w+|branch1_\w+)\.(.+)", key)) and (
            m[3] in _PTV_BLOCK_PARTS and len(stage_ids) == 4
        ):
            new = f"layer{stage_ids.index(int(m[1])) + 1}.{m[2]}.{_PTV_BLOCK_PARTS[m[3]]}.{m[4]}"
        elif (m := re.fullmatch(r"blocks\.(\d+)\.proj\.(weight|bias)", key)) and int(m[1]) == head:
            new = f"fc.{m[2]}"
        _put(out, new, value, key)
    return out


def convert_torchvision_video(state: Mapping[str, Tensor]) -> StateDict:
    """torchvision ``r3d_18`` / ``mc3_18`` / ``r2plus1d_18`` keys → ResNet3D keys.

    R(2+1)D's stem is ``stem.0/1/3/4`` (factorised conv, BN); the others' is ``stem.0/1``.
    """
    model_name = "r2plus1d_18" if "stem.3.weight" in state else "r3d_18"
    out: StateDict = {}
    for key, value in state.items():
        try:
            new = torchvision_key(key, model_name=model_name)
        except KeyError:
            new = key
        _put(out, new, value, key)
    return out


_MM_CONVMODULE = {"conv": 0, "bn": 1}


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
            new = f"{m[1]}.downsample.{_MM_CONVMODULE[m[2]]}.{m[3]}"
        elif m := re.fullmatch(r"backbone\.(layer\d)\.(\d+)\.non_local_block\.(g|theta|phi)(?:\.0)?\.conv\.(weight|bias)",
                               k):
            new = f"nonlocal_blocks.{m[1]}_after_{m[2]}.{m[3]}.{m[4]}"
        elif m := re.fullmatch(r"backbone\.(layer\d)\.(\d+)\.non_local_block\.conv_out\.(conv|bn)\.(.+)", k):
            new = f"nonlocal_blocks.{m[1]}_after_{m[2]}.{'w2' if m[3] == 'conv' else 'bn'}.{m[4]}"
        elif m := re.fullmatch(r"backbone\.(layer\d\.\d+\.non_local_block\..+)", k):
            new = m[1]  # a NonLocal3d part snl_video has no counterpart for (gaussian / concatenation modes)
        elif m := re.fullmatch(r"cls_head\.fc_cls\.(weight|bias)", k):
            new = f"fc.{m[1]}"
        _put(out, new, value, key)
    return out


_SF_BRANCH2 = {"a": "conv1", "b": "conv2", "c": "conv3", "a_bn": "bn1", "b_bn": "bn2", "c_bn": "bn3"}


def convert_slowfast(state: Mapping[str, Tensor]) -> StateDict:
    """PySlowFast single-pathway ResNet keys (``s1.pathway0_stem``, ``sS.pathway0_resJ``) → ResNet3D keys."""
    out: StateDict = {}
    for key, value in state.items():
        new = key
        if m := re.fullmatch(r"s1\.pathway0_stem\.(conv|bn)\.(.+)", key):
            new = f"{'conv1' if m[1] == 'conv' else 'bn1'}.{m[2]}"
        elif m := re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch2\.(a|b|c|a_bn|b_bn|c_bn)\.(.+)", key):
            new = f"layer{int(m[1]) - 1}.{m[2]}.{_SF_BRANCH2[m[3]]}.{m[4]}"
        elif m := re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch1(_bn)?\.(.+)", key):
            new = f"layer{int(m[1]) - 1}.{m[2]}.downsample.{1 if m[3] else 0}.{m[4]}"
        elif m := re.fullmatch(r"head\.projection\.(weight|bias)", key):
            new = f"fc.{m[1]}"
        _put(out, new, value, key)
    return out


_C2_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_C2_BRANCH2 = {"a": "1", "b": "2", "c": "3"}


def convert_caffe2(state: Mapping[str, Tensor]) -> StateDict:
    """Caffe2 video ResNet blob names → ResNet3D keys (BN ``_s/_b/_rm/_riv``; ``num_batches_tracked`` added as 0)."""
    out: StateDict = {}
    bn_modules: list[str] = []
    for key, value in state.items():
        new = key
        if key == "conv1_w":
            new = "conv1.weight"
        elif m := re.fullmatch(r"res_conv1_bn_(s|b|rm|riv)", key):
            new = f"bn1.{_C2_BN[m[1]]}"
            bn_modules.append("bn1")
        elif m := re.fullmatch(r"res(\d)_(\d+)_branch2([abc])_w", key):
            new = f"layer{int(m[1]) - 1}.{m[2]}.conv{_C2_BRANCH2[m[3]]}.weight"
        elif m := re.fullmatch(r"res(\d)_(\d+)_branch2([abc])_bn_(s|b|rm|riv)", key):
            module = f"layer{int(m[1]) - 1}.{m[2]}.bn{_C2_BRANCH2[m[3]]}"
            new = f"{module}.{_C2_BN[m[4]]}"
            bn_modules.append(module)
        elif m := re.fullmatch(r"res(\d)_(\d+)_branch1_w", key):
            new = f"layer{int(m[1]) - 1}.{m[2]}.downsample.0.weight"
        elif m := re.fullmatch(r"res(\d)_(\d+)_branch1_bn_(s|b|rm|riv)", key):
            module = f"layer{int(m[1]) - 1}.{m[2]}.downsample.1"
            new = f"{module}.{_C2_BN[m[3]]}"
            bn_modules.append(module)
        elif m := re.fullmatch(r"pred_(w|b)", key):
            new = f"fc.{'weight' if m[1] == 'w' else 'bias'}"
        _put(out, new, value, key)
    for module in dict.fromkeys(bn_modules):
        out.setdefault(f"{module}.num_batches_tracked", torch.zeros((), dtype=torch.long))
    return out


def convert_ffc(state: Mapping[str, Tensor]) -> StateDict:
    """pkumivision/FFC keys → FFC backbone keys: the same names, ``module.`` dropped if every key has it."""
    return {key.removeprefix("module.") if all(k.startswith("module.") for k in state) else key: value
            for key, value in state.items()}


def convert_bat_video(state: Mapping[str, Tensor]) -> StateDict:
    """BAT-Video-Classification keys → ``bat_c2d_r50`` / ``bat_i3d_r50`` keys (see the module docstring)."""
    out: StateDict = {}
    for key, value in state.items():
        new = key.removeprefix("module.")
        if new == "fc.weight" and value.dim() == 5:
            if tuple(value.shape[2:]) != (1, 1, 1):
                raise WeightsLoadError(f"BAT checkpoint head fc.weight has shape {tuple(value.shape)}, expected (K, C, 1, 1, 1)")
            value = value.reshape(value.shape[0], value.shape[1])
        elif m := re.fullmatch(r"(layer\d)\.nl(\d+)\.(.+)", new):
            new = f"nonlocal_blocks.{m[1]}_after_{m[2]}.{m[3]}"
        _put(out, new, value, key)
    return out


def check_nonlocal_keys(
    state: Mapping[str, Tensor], *, model_keys: set[str], model_blocks: list[str], ignored: set[str], fmt: str
) -> None:
    """Explain non-local tensors of a checkpoint that the model cannot take (unless ignored).

    * mmaction2's ``non_local_block`` tensors left after conversion (``NonLocal3d`` in its
      ``gaussian`` or ``concatenation`` mode) have no counterpart, so they are not transferable.
    * snl_video's own ``nonlocal_blocks.<name>`` keys (mmaction2's converted ones included)
      must match blocks the model has.
    """
    foreign = sorted(k for k in state if "non_local_block." in k and k not in ignored)
    if foreign:
        raise WeightsLoadError(
            f"this {fmt} checkpoint holds {len(foreign)} non-local tensors (e.g. {foreign[:3]}) of a NonLocal3d mode "
            "snl_video's blocks do not represent (only embedded_gaussian and dot_product convert), so they are not "
            "transferable. Load the backbone alone and train fresh blocks: set pretrained.ignore=['*non_local_block*'] "
            "(and nonlocal_blocks: to place snl_video's own; Python: pretrained_ignore=('*non_local_block*',))."
        )
    extra = sorted(
        {k.split(".")[1] for k in state if k.startswith("nonlocal_blocks.") and k not in model_keys and k not in ignored}
    )
    if extra:
        hint = ""
        if fmt == "mmaction2":
            hint = (" (an mmaction2 I3D-NL file: build with nonlocal_blocks=snl_video.models.mmaction2_nonlocal_spec("
                    "mode) — mode 'embedded_gaussian' or 'dot_product', as its config's non_local_cfg — to load its "
                    "blocks too)")
        raise WeightsLoadError(
            f"the weights hold non-local blocks {extra} that the model does not have (it has "
            f"{model_blocks or 'none'}): build the model with the same nonlocal_blocks{hint}, or set "
            "pretrained.ignore=['nonlocal_blocks.*'] to load only the backbone (Python: "
            "pretrained_ignore=('nonlocal_blocks.*',))"
        )


def mmaction2_nonlocal_spec(
    mode: str = "embedded_gaussian",
    *,
    use_scale: bool = False,
    sub_sample: bool = True,
    positions: dict[str, list[int]] | None = None,
) -> dict:
    """The ``nonlocal_blocks`` spec that reproduces mmaction2's I3D-R50-NL blocks exactly.

    ``mode`` and ``use_scale`` / ``sub_sample`` are those of the checkpoint's
    ``non_local_cfg`` (the published I3D-NL configs: ``sub_sample=True, use_scale=False``;
    the weights do not record the mode). ``positions`` default to the published
    ``non_local=((0,0,0), (0,1,0,1), (0,1,0,1,0,1), (0,0,0))``: after blocks 1 and 3 of
    ``layer2`` and 1, 3, 5 of ``layer3``. Use it with ``build_model("i3d_r50", ...,
    nonlocal_blocks=mmaction2_nonlocal_spec(...), pretrained=FILE)``.
    """
    kinds = {"embedded_gaussian": "nl", "dot_product": "nl_dot"}
    if mode not in kinds:
        raise ValueError(f"mode must be one of {list(kinds)} (mmaction2's gaussian and concatenation modes have no "
                         f"snl_video counterpart), got {mode!r}")
    options: dict = {"bias": True, "activation": "none", "subsample": [1, 2, 2] if sub_sample else [1, 1, 1]}
    if mode == "embedded_gaussian":
        options["scale"] = bool(use_scale)
    elif use_scale:
        raise ValueError("use_scale only applies to mmaction2's embedded_gaussian mode")
    return {
        "kind": kinds[mode],
        "options": options,
        "positions": positions or {"layer2": [1, 3], "layer3": [1, 3, 5]},
    }


_CONVERTERS = {
    "pytorchvideo": convert_pytorchvideo,
    "torchvision_video": convert_torchvision_video,
    "mmaction2": convert_mmaction2,
    "slowfast": convert_slowfast,
    "caffe2": convert_caffe2,
    "ffc": convert_ffc,
    "bat_video": convert_bat_video,
}


def register_checkpoint_converters() -> None:
    """Register this module's converters (idempotent: a format already served by them is left alone)."""
    for fmt, converter in _CONVERTERS.items():
        if CONVERTERS.get(fmt) is not converter:
            register_converter(fmt, converter, overwrite=True)


register_checkpoint_converters()
