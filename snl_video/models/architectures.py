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
"""

from __future__ import annotations

from .resnet3d import ConvSpec, ResNet3DSpec, StageSpec, StemSpec

__all__ = ["hara_resnet", "pytorchvideo_resnet50", "torchvision_video_resnet18", "HARA_DEPTHS"]

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
        raise ValueError(f"Hara 3D ResNet depth must be one of {sorted(HARA_DEPTHS)}, got {depth!r}")
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' (zero padding) or 'B' (1x1x1 conv + BN), got {shortcut!r}")
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
        raise ValueError(f"pytorchvideo R50 variant must be one of {list(_PYTORCHVIDEO_CONV_A)}, got {variant!r}")
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
        raise ValueError(f"torchvision video ResNet variant must be r3d, mc3 or r2plus1d, got {variant!r}")
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
