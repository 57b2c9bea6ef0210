"""The backbones of the registry, each a :class:`~.resnet3d.ResNet3DSpec` (pure data).

* ``r3d10 … r3d200``: Hara et al. (CVPR 2018), the 3D-ResNets-PyTorch project (2020
  version: ``conv1_t_size``, ``conv1_t_stride``, ``no_max_pool``, ``widen_factor``);
  shortcut "B" (or "A" with ``shortcut="A"``); every residual conv 3×3×3; layers 2–4
  stride 2 in t, h and w.
* ``i3d_r50``, ``slow_r50``, ``c2d_r50``: pytorchvideo's hub models (the SlowFast
  codebase's I3D/Slow/C2D R50): stem ``k×7×7``, max-pool ``1×3×3``, bottlenecks whose
  first conv carries the temporal kernel (I3D: ``3×1×1`` and ``1×1×1`` alternating),
  spatial ``1×3×3`` second conv, no temporal stride; I3D and C2D pool time by 2 after
  res2. Head dropout 0.5.
* ``r3d_18``, ``mc3_18``, ``r2plus1d_18``: torchvision's video ResNets (basic blocks;
  3×3×3, mixed 3×3×3 then 1×3×3, and (2+1)D convs).
* ``ffc_c2d_r50``, ``ffc_i3d_r50``, ``ffc_r3d50``, ``ffc_r3d10``, ``ffc_r3d18``: the C2D / I3D /
  Hara R50 trunks and Hara's basic-block R10 / R18 with every residual conv an FFC (Chi et al.,
  NeurIPS 2020): global share 0 → α in res2, α → α in res3–res4, α → 0 in res5 (the released
  ImageNet FFC-ResNet's split); see :mod:`.ffc`.
* ``bat_c2d_r50``, ``bat_i3d_r50``: BAT-Video-Classification's C2D / I3D ResNet-50 (Chi et
  al., CVPR 2020): the pytorchvideo layout, but the stem max-pool has no padding and the
  head average-pools (T, 7, 7) windows at stride 1 and averages their scores.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Mapping

from ..errors import InvalidValueError
from .resnet3d import ConvSpec, FourierSpec, ResNet3DSpec, StageSpec, StemSpec

if TYPE_CHECKING:
    from .weights_fit import WeightsMismatch

__all__ = [
    "hara_resnet",
    "pytorchvideo_resnet50",
    "torchvision_video_resnet18",
    "ffc_resnet",
    "bat_resnet50",
    "HARA_DEPTHS",
    "explain_shortcut_mismatch",
    "without_shortcuts",
]

# depth → (block, blocks per stage), from the 3D-ResNets-PyTorch `generate_model`.
HARA_DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
_WIDTHS = (64, 128, 256, 512)

_FULL = ConvSpec((3, 3, 3))
_POINT = ConvSpec((1, 1, 1))
_SPATIAL = ConvSpec((1, 3, 3))
_TEMPORAL = ConvSpec((3, 1, 1))


def hara_resnet(
    depth: int,
    *,
    conv1_t_size: int = 7,
    conv1_t_stride: int = 1,
    no_max_pool: bool = False,
    widen_factor: float = 1.0,
    shortcut: str = "B",
) -> ResNet3DSpec:
    """Hara's 3D ResNet of ``depth`` (10, 18, 34, 50, 101, 152 or 200).

    ``conv1_t_size``/``conv1_t_stride``: temporal kernel and stride of ``conv1`` (7 and 1
    in the paper's and the 2017 checkpoints); ``no_max_pool`` drops the stem pool;
    ``widen_factor`` scales every width (wide ResNets); ``shortcut``: "B" (1×1×1 conv + BN,
    the 2020 release and every 2017 ResNet-50+) or "A" (stride + zero channels, the 2017
    ``resnet-18/34-kinetics.pth``; the project's ``--resnet_shortcut``).
    """
    if depth not in HARA_DEPTHS:
        raise InvalidValueError(f"Hara 3D ResNet depth must be one of {sorted(HARA_DEPTHS)}, got {depth!r}")
    if shortcut not in ("A", "B"):
        raise InvalidValueError(f"shortcut must be 'A' (zero padding) or 'B' (1x1x1 conv + BN), got {shortcut!r}")
    block, depths = HARA_DEPTHS[depth]
    widths = [int(w * widen_factor) for w in _WIDTHS]
    pattern = ((_POINT, _FULL, _POINT),) if block == "bottleneck" else ((_FULL, _FULL),)
    stem = StemSpec(
        conv=ConvSpec((conv1_t_size, 7, 7)),
        stride=(conv1_t_stride, 2, 2),
        out_channels=widths[0],
        pool_kernel=None if no_max_pool else (3, 3, 3),
        pool_stride=None if no_max_pool else (2, 2, 2),
        pool_padding=None if no_max_pool else (1, 1, 1),
    )
    stages = tuple(
        StageSpec(depth=d, width=w, stride=(1, 1, 1) if i == 0 else (2, 2, 2), conv_patterns=pattern)
        for i, (d, w) in enumerate(zip(depths, widths))
    )
    return ResNet3DSpec(block=block, stem=stem, stages=stages, family="hara", shortcut=shortcut)  # type: ignore[arg-type]


# Per-stage patterns of the first (temporal) bottleneck conv, from pytorchvideo's hub builders.
_PYTORCHVIDEO_CONV_A = {
    "i3d": ((_TEMPORAL,), (_TEMPORAL, _POINT), (_TEMPORAL, _POINT), (_POINT, _TEMPORAL)),
    "slow": ((_POINT,), (_POINT,), (_TEMPORAL,), (_TEMPORAL,)),
    "c2d": ((_POINT,), (_POINT,), (_POINT,), (_POINT,)),
}
_PYTORCHVIDEO_STEM_T = {"i3d": 5, "slow": 1, "c2d": 1}
_PYTORCHVIDEO_POOL_AFTER_RES2 = {"i3d": True, "slow": False, "c2d": True}


def pytorchvideo_resnet50(variant: str, *, dropout: float = 0.5) -> ResNet3DSpec:
    """pytorchvideo's ``i3d_r50`` / ``slow_r50`` / ``c2d_r50`` (``variant`` i3d, slow, c2d)."""
    if variant not in _PYTORCHVIDEO_CONV_A:
        raise InvalidValueError(f"pytorchvideo R50 variant must be one of {list(_PYTORCHVIDEO_CONV_A)}, got {variant!r}")
    stem = StemSpec(
        conv=ConvSpec((_PYTORCHVIDEO_STEM_T[variant], 7, 7)),
        stride=(1, 2, 2),
        out_channels=64,
        pool_kernel=(1, 3, 3),
        pool_stride=(1, 2, 2),
        pool_padding=(0, 1, 1),
    )
    stages = []
    for i, (depth, width) in enumerate(zip(HARA_DEPTHS[50][1], _WIDTHS)):
        stages.append(
            StageSpec(
                depth=depth,
                width=width,
                stride=(1, 1, 1) if i == 0 else (1, 2, 2),
                conv_patterns=tuple((conv_a, _SPATIAL, _POINT) for conv_a in _PYTORCHVIDEO_CONV_A[variant][i]),
                pool_after=(2, 1, 1) if i == 0 and _PYTORCHVIDEO_POOL_AFTER_RES2[variant] else None,
            )
        )
    return ResNet3DSpec(block="bottleneck", stem=stem, stages=tuple(stages), dropout=dropout, family="pytorchvideo")


def torchvision_video_resnet18(variant: str, *, dropout: float = 0.0) -> ResNet3DSpec:
    """torchvision's ``r3d_18`` / ``mc3_18`` / ``r2plus1d_18`` (``variant`` r3d, mc3, r2plus1d)."""
    if variant not in ("r3d", "mc3", "r2plus1d"):
        raise InvalidValueError(f"torchvision video ResNet variant must be r3d, mc3 or r2plus1d, got {variant!r}")
    if variant == "r2plus1d":
        stem = StemSpec(conv=ConvSpec((3, 7, 7), factorized=True), stride=(1, 2, 2), mid_channels=45)
    else:
        stem = StemSpec(conv=ConvSpec((3, 7, 7)), stride=(1, 2, 2))
    stages = []
    for i, width in enumerate(_WIDTHS):
        if variant == "r3d":
            conv, stride = _FULL, (2, 2, 2)
        elif variant == "mc3":  # MC3: full 3D convs in layer1 only, 2D (1×3×3) afterwards
            conv, stride = (_FULL, (2, 2, 2)) if i == 0 else (_SPATIAL, (1, 2, 2))
        else:
            conv, stride = ConvSpec((3, 3, 3), factorized=True), (2, 2, 2)
        stages.append(
            StageSpec(depth=2, width=width, stride=(1, 1, 1) if i == 0 else stride, conv_patterns=((conv, conv),))
        )
    return ResNet3DSpec(block="basic", stem=stem, stages=tuple(stages), dropout=dropout, family="torchvision")


def ffc_resnet(base: ResNet3DSpec, *, ratio_global: float = 0.25, lfu: bool = False, fft: str = "2d") -> ResNet3DSpec:
    """``base`` (a bottleneck or basic-block ResNet) with every residual conv replaced by an FFC.

    ``ratio_global`` (α) is the global share of the channels: res2 goes 0 → α, res3 and res4
    α → α, res5 α → 0 (its first block takes the global part in; the head sees only local
    channels), as pkumivision/FFC's ``FFCResNet`` for both its ``Bottleneck`` (ResNet-50 and
    deeper) and its ``BasicBlock`` (``ffc_resnet18/34``). ``lfu`` adds the local Fourier unit;
    ``fft`` is ``"2d"`` (per frame) or ``"3d"`` (over T, H, W). The trunk's convs must be plain
    (not (2+1)D) and its shortcuts convs (shortcut "B"): an FFC shortcut is an FFC conv.
    """
    if base.block not in ("basic", "bottleneck"):
        raise InvalidValueError(f"FFC backbones need basic or bottleneck blocks, {base.family or 'this'} backbone has {base.block!r}")
    if any(conv.factorized for stage in base.stages for pattern in stage.conv_patterns for conv in pattern):
        raise InvalidValueError(
            f"FFC backbones need plain convs, but the {base.family or 'given'} trunk has factorized (2+1)D convs: "
            "use a trunk with full 3-D or 2-D kernels (e.g. r3d18, c2d_r50)"
        )
    if base.shortcut != "B":
        raise InvalidValueError(
            f"FFC backbones have FFC shortcut convs (shortcut 'B'), but the trunk has shortcut {base.shortcut!r}: "
            "build the trunk with shortcut='B'"
        )
    if isinstance(ratio_global, bool) or not isinstance(ratio_global, (int, float)) or not 0 < ratio_global < 1:
        raise InvalidValueError(f"ratio_global must be a number in (0, 1) (the published FFC-C2D uses 0.25), got {ratio_global!r}")
    if not isinstance(lfu, bool):
        raise InvalidValueError(f"lfu must be true or false, got {lfu!r}")
    if fft not in ("2d", "3d"):
        raise InvalidValueError(f"fft must be '2d' (per-frame FFT) or '3d' (FFT over T, H, W), got {fft!r}")
    a = float(ratio_global)
    ratios = ((0.0, a), (a, a), (a, a), (a, 0.0))
    stages = tuple(dataclasses.replace(s, global_ratio=r) for s, r in zip(base.stages, ratios))
    return dataclasses.replace(
        base, stages=stages, fourier=FourierSpec(lfu=lfu, fft=fft), family=f"ffc-{base.family}"  # type: ignore[arg-type]
    )


def bat_resnet50(variant: str, *, dropout: float = 0.5) -> ResNet3DSpec:
    """BAT-Video-Classification's ``c2d_resnet50`` / ``i3d_resnet50`` (``variant`` c2d, i3d).

    Same convs as pytorchvideo's C2D / I3D R50 (stem 1×7×7 / 5×7×7, temporal kernels
    ``[0,0,0] [0,0,0,0] ...`` / ``[1,1,1] [1,0,1,0] [1,0,1,0,1,0] [0,1,0]``, temporal max-pool
    by 2 after res2), but the stem max-pool 1×3×3 / (1,2,2) has **no padding** (a 224² input
    gives 55² after it, not 56²) and the head average-pools (T, 7, 7) windows at stride 1,
    applies dropout and ``fc`` (a 1×1×1 conv there) to each and averages the scores: global
    pooling on a 7×7 map (224² input), a non-uniform average on larger maps (their fully
    convolutional 256² test); on maps smaller than 7 (112² input: 4×4) it pools globally.
    """
    if variant not in ("c2d", "i3d"):
        raise InvalidValueError(f"BAT ResNet-50 variant must be c2d or i3d, got {variant!r}")
    base = pytorchvideo_resnet50(variant, dropout=dropout)
    stem = dataclasses.replace(base.stem, pool_padding=(0, 0, 0))
    return dataclasses.replace(base, stem=stem, head_window=(7, 7), family="bat")


def without_shortcuts(signature: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """A backbone signature (key → shape) without the ``downsample`` (shortcut-B projection) tensors."""
    return {k: v for k, v in signature.items() if ".downsample." not in k}


def explain_shortcut_mismatch(mismatch: "WeightsMismatch") -> str | None:
    """Advice when a Hara ResNet's weights differ from the model only by its shortcut type.

    3D-ResNets-PyTorch networks come with shortcut A (zero padding, no ``downsample``
    tensors: the 2017 resnet-18/34 Kinetics files) or B (1×1×1 conv + BN); a file of one
    into a model of the other differs in exactly those tensors. ``None`` for other families
    or other differences.
    """
    spec = mismatch.spec
    if not isinstance(spec, ResNet3DSpec) or spec.family != "hara":
        return None
    mine, theirs = mismatch.model_signature, mismatch.checkpoint_signature
    own_ds = any(".downsample." in k for k in mine)
    their_ds = any(".downsample." in k for k in theirs)

    if own_ds == their_ds or without_shortcuts(mine) != without_shortcuts(theirs):
        return None
    need = "A" if own_ds else "B"
    return (
        f"{mismatch.source} {'has no' if own_ds else 'has'} shortcut (downsample) tensors, but the model "
        f"was built with shortcut {spec.shortcut!r}: it is a shortcut-{need} network"
        + (" (3D-ResNets-PyTorch 2017 resnet-18/34)" if need == "A" else "")
        + f". Set model.options.shortcut={need} (YAML: model: {{options: {{shortcut: {need}}}}}; "
          f"Python: shortcut={need!r})"
    )
