"""X3D (Feichtenhofer, CVPR 2020): a ResNet of channel-wise separable 3D bottlenecks.

The trunk is the toolkit's four-stage ResNet layout (``layer1..layer4``, non-local blocks
after chosen residual blocks under the same ``layerK_after_i`` keys and the same
:mod:`.placement` spec), with X3D's own block and stem:

* stem ``conv1``: a ``1×3×3`` conv (stride ``1×2×2``) to 24 channels, then a channel-wise
  (depthwise) ``5×1×1`` temporal conv, ``bn1``, ReLU; no pooling.
* :class:`X3DBlock`: ``1×1×1`` conv to ``inner`` channels, BN, ReLU; a channel-wise
  ``3×3×3`` conv (the stage's spatial stride in its first block), BN, squeeze-excitation
  (on blocks 0, 2, 4, … of a stage, ``round_width(inner, 1/16)`` reduced channels), swish;
  ``1×1×1`` conv to ``out`` channels, BN; sum with the shortcut, ReLU. The shortcut of a
  stage's first block is a strided ``1×1×1`` conv, with BN only where the width changes
  (so res2's, 24 → 24, has none — as pytorchvideo's ``create_x3d_res_block``).
* head: ``conv5`` (``1×1×1`` to ``inner`` of res5), ``bn5``, ReLU, global average,
  ``lin5`` (``1×1×1`` to 2048, no bias), ReLU, dropout, ``fc``.

Widths (γ_w = 2, bottleneck expansion 2.25): stages 24, 48, 96, 192 with inner widths 54,
108, 216, 432; depths (γ_d = 2.2) 3, 5, 11, 7. XS, S and M are this same network: they
differ only in the clip they are trained and tested on (4×160² / 13×160² / 16×224²; tested
at 182², 182², 256²), which lives with the weights' input spec, not here.

**The head is windowed, as pytorchvideo's and PySlowFast's.** Its average pool has a kernel
fixed at build time from the clip the model is trained on (``head_pool_input`` = ``(T, H, W)``:
``(T, ⌈H/32⌉, ⌈W/32⌉)`` on the res5 map, stride 1), so a larger test clip (X3D's fully
convolutional test: trained at 160², tested at 182² or on three 256² crops) is scored as
the mean over every window position of ``fc(relu(lin5(window)))`` — pytorchvideo's
``create_x3d(..., head_output_with_global_average=True)`` with the softmax left out (the
toolkit averages probabilities over views itself). At the training size there is one window,
the global average. A kernel larger than the map (a smaller test clip) is cut to the map,
where pytorchvideo would fail; ``head_pool_input=None`` pools globally at any size. Dropout
acts on the mean of the windows' features (pytorchvideo's on each window): the same in eval,
and in training at the training size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F

from .backbone import VideoBackbone
from .resnet3d import STAGE_NAMES

logger = logging.getLogger(__name__)

__all__ = ["X3DSpec", "X3DBlock", "SqueezeExcitation3D", "X3D", "x3d_spec", "round_width", "head_pool_kernel",
           "SPATIAL_STRIDE"]

Triple = tuple[int, int, int]


def round_width(width: float, multiplier: float, *, min_width: int = 8, divisor: int = 8) -> int:
    """``width × multiplier`` rounded to a multiple of ``divisor`` (at least ``min_width``),
    bumped by one ``divisor`` when rounding lost more than 10 % (the X3D paper's rule)."""
    scaled = width * multiplier
    out = max(min_width, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


@dataclass(frozen=True)
class X3DSpec:
    """An X3D network as data (defaults: X3D-XS/S/M).

    Args:
        stem_channels: output width of the stem.
        stem_temporal_kernel: temporal kernel of the stem's channel-wise conv.
        depths, widths, inner_widths: per stage (``layer1..layer4``).
        se_reduced: per stage, the squeeze-excitation's reduced width (SE on even blocks).
        head_features: ``lin5``'s output width (before ``fc``).
        dropout: head dropout.
        head_pool_input: the clip ``(T, H, W)`` the head's average pool is sized for (the
            training clip: pytorchvideo's ``input_clip_length`` / ``input_crop_size``), making
            the head windowed on larger clips; ``None``: a global average at any size.
    """

    stem_channels: int = 24
    stem_temporal_kernel: int = 5
    depths: tuple[int, int, int, int] = (3, 5, 11, 7)
    widths: tuple[int, int, int, int] = (24, 48, 96, 192)
    inner_widths: tuple[int, int, int, int] = (54, 108, 216, 432)
    se_reduced: tuple[int, int, int, int] = (8, 8, 16, 32)
    head_features: int = 2048
    dropout: float = 0.5
    in_channels: int = 3
    family: str = "x3d"
    head_pool_input: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.head_pool_input is not None:
            size = tuple(self.head_pool_input)
            if len(size) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in size):
                raise ValueError(f"X3DSpec.head_pool_input must be a clip (T, H, W) of 3 positive ints, or None for a "
                                 f"global average, got {self.head_pool_input!r}")
            object.__setattr__(self, "head_pool_input", size)
        for name in ("depths", "widths", "inner_widths", "se_reduced"):
            values = getattr(self, name)
            if len(values) != len(STAGE_NAMES) or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
                raise ValueError(f"X3DSpec.{name} must be {len(STAGE_NAMES)} positive ints, got {values!r}")

    def stage_channels(self) -> dict[str, int]:
        return dict(zip(STAGE_NAMES, self.widths))

    def stage_depths(self) -> dict[str, int]:
        return dict(zip(STAGE_NAMES, self.depths))


def x3d_spec(
    *, width_factor: float = 2.0, depth_factor: float = 2.2, bottleneck_factor: float = 2.25, dropout: float = 0.5,
    head_pool_input: tuple[int, int, int] | None = None,
) -> X3DSpec:
    """The X3D spec of the given expansion factors (γ_w, γ_d and the bottleneck's; the paper's
    XS/S/M: 2.0, 2.2, 2.25). Base: 12-channel stem, stage depths 1, 2, 5, 3, widths doubling.
    ``head_pool_input``: the training clip the head's window is sized for (see :class:`X3DSpec`)."""
    base_depths, base_widths = (1, 2, 5, 3), [12]
    for _ in range(3):
        base_widths.append(round_width(base_widths[-1], 2.0))
    widths = tuple(round_width(w, width_factor) for w in base_widths)
    inner = tuple(int(bottleneck_factor * w) for w in widths)
    return X3DSpec(
        stem_channels=round_width(12, width_factor),
        depths=tuple(int(math.ceil(depth_factor * d)) for d in base_depths),  # type: ignore[arg-type]
        widths=widths,  # type: ignore[arg-type]
        inner_widths=inner,  # type: ignore[arg-type]
        se_reduced=tuple(round_width(c, 0.0625) for c in inner),  # type: ignore[arg-type]
        dropout=dropout,
        head_pool_input=None if head_pool_input is None else tuple(head_pool_input),  # type: ignore[arg-type]
    )


#: The spatial stride of the trunk (stem 2 × four stages 2): the res5 map is ``⌈H/32⌉`` wide.
SPATIAL_STRIDE = 32


def head_pool_kernel(clip: tuple[int, int, int]) -> tuple[int, int, int]:
    """The head's pool kernel on the res5 map for a model trained on ``clip`` = ``(T, H, W)``:
    ``(T, ⌈H/32⌉, ⌈W/32⌉)`` (no temporal stride in X3D), as pytorchvideo's ``create_x3d``."""
    t, h, w = clip
    return t, math.ceil(h / SPATIAL_STRIDE), math.ceil(w / SPATIAL_STRIDE)


class SqueezeExcitation3D(nn.Module):
    """``x · sigmoid(fc2(relu(fc1(mean_THW(x)))))`` with ``1×1×1`` convs (with bias)."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(channels, reduced, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv3d(reduced, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        scale = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * self.fc2(self.relu(self.fc1(scale))).sigmoid()


class X3DBlock(nn.Module):
    """X3D's residual bottleneck (see the module doc); ``se_reduced=0`` leaves out the SE."""

    def __init__(
        self, in_channels: int, inner_channels: int, out_channels: int, *, stride: Triple = (1, 1, 1), se_reduced: int = 0
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, inner_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(inner_channels)
        self.conv2 = nn.Conv3d(
            inner_channels, inner_channels, 3, stride=stride, padding=1, groups=inner_channels, bias=False
        )
        self.bn2 = nn.BatchNorm3d(inner_channels)
        self.se = SqueezeExcitation3D(inner_channels, se_reduced) if se_reduced > 0 else None
        self.swish = nn.SiLU()
        self.conv3 = nn.Conv3d(inner_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if in_channels != out_channels or tuple(stride) != (1, 1, 1):
            layers: list[nn.Module] = [nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False)]
            if in_channels != out_channels:
                layers.append(nn.BatchNorm3d(out_channels))
            self.downsample = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        out = self.bn3(self.conv3(self.swish(out)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class X3D(VideoBackbone):
    """Stem → ``layer1..layer4`` of :class:`X3DBlock` (spatial stride 2 each, non-local blocks
    after chosen residual blocks) → ``conv5``/``bn5`` → global average → ``lin5`` → ``fc``.

    Input ``(B, C, T, H, W)``; output logits ``(B, num_classes)``. Build instances with
    :func:`snl_video.models.build_model` (``"x3d_xs"``, ``"x3d_s"``, ``"x3d_m"``).
    """

    zero_conv_bias = True

    def __init__(self, spec: X3DSpec, *, num_classes: int) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.spec = spec
        self.num_classes = num_classes
        stem = spec.stem_channels
        kt = spec.stem_temporal_kernel
        self.conv1 = nn.Sequential(
            nn.Conv3d(spec.in_channels, stem, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            nn.Conv3d(stem, stem, (kt, 1, 1), padding=(kt // 2, 0, 0), groups=stem, bias=False),
        )
        self.bn1 = nn.BatchNorm3d(stem)
        self.relu = nn.ReLU(inplace=True)
        channels = stem
        for i, name in enumerate(STAGE_NAMES):
            blocks = []
            for index in range(spec.depths[i]):
                blocks.append(
                    X3DBlock(
                        channels,
                        spec.inner_widths[i],
                        spec.widths[i],
                        stride=(1, 2, 2) if index == 0 else (1, 1, 1),
                        se_reduced=spec.se_reduced[i] if index % 2 == 0 else 0,
                    )
                )
                channels = spec.widths[i]
            self.add_module(name, nn.Sequential(*blocks))
        head_inner = spec.inner_widths[-1]
        self.conv5 = nn.Conv3d(channels, head_inner, 1, bias=False)
        self.bn5 = nn.BatchNorm3d(head_inner)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        #: the head's window on the res5 map; None: a global average
        self.head_pool_kernel = None if spec.head_pool_input is None else head_pool_kernel(spec.head_pool_input)
        self.lin5 = nn.Conv3d(head_inner, spec.head_features, 1, bias=False)
        self.feature_channels = spec.head_features
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(spec.head_features, num_classes)
        # Non-local blocks, keyed "<stage>_after_<block index>"; filled by placement.
        self.nonlocal_blocks = nn.ModuleDict()
        self.reset_parameters()

    def forward_maps(self, x: Tensor) -> Tensor:
        """The last stage's feature map ``(B, widths[-1], T, H', W')`` (before the head)."""
        self.check_clip(x)
        x = self.relu(self.bn1(self.conv1(x)))
        for name in STAGE_NAMES:
            x = self.run_stage(name, getattr(self, name), x)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """The head's features ``(B, head_features)`` before dropout and ``fc``: the mean over
        the head's windows of ``relu(lin5(window average))`` (one window, the global average,
        at the training size or without ``head_pool_input``)."""
        x = self.relu(self.bn5(self.conv5(self.forward_maps(x))))
        if self.head_pool_kernel is None:
            return self.relu(self.lin5(self.avgpool(x))).flatten(1)
        kernel = tuple(min(k, size) for k, size in zip(self.head_pool_kernel, x.shape[2:]))
        windows = self.relu(self.lin5(F.avg_pool3d(x, kernel, stride=1)))
        return windows.mean(dim=(2, 3, 4))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.forward_features(x)))
