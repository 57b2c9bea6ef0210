"""One generic 3D ResNet whose stem and stages are described as data.

Every backbone of the toolkit (Hara's 3D ResNets, pytorchvideo's I3D / Slow / C2D
R50, torchvision's R3D / MC3 / R(2+1)D) is a :class:`ResNet3D` built from a
:class:`ResNet3DSpec`: a stem, four stages and a head. A stage says how deep it is,
how wide, its stride and the *conv pattern* of its residual blocks (the kernel of each
conv, cycled over the blocks, so I3D's alternating ``3×1×1 / 1×1×1`` inflation is one
line of data). The families differ only in that data, not in classes or flags; FFC
backbones set ``spec.fourier`` (every block an :class:`~.ffc.FFCBottleneck3D` or, on a
basic-block trunk, an :class:`~.ffc.FFCBasicBlock3D`; each stage's ``global_ratio``) and BAT-Video-Classification's head sets ``spec.head_window``.

State-dict keys follow Hara's 3D-ResNets-PyTorch (``conv1``, ``bn1``,
``layerX.Y.convZ`` / ``bnZ``, ``layerX.Y.downsample.0/1``, ``fc``), so its checkpoints
map one-to-one; other families' checkpoints are converted by their format's record in
:mod:`snl_video.weights.formats`.

Non-local blocks are kept out of the stages, in ``nonlocal_blocks`` (an
:class:`~torch.nn.ModuleDict` keyed ``"<stage>_after_<index>"``) and applied by
:meth:`ResNet3D.forward`, so placing blocks never renames a backbone key and one
checkpoint loads with or without them (see :mod:`.placement`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Sequence, get_args

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InvalidValueError
from .backbone import VideoBackbone, nonlocal_key
from .ffc import FFCBasicBlock3D, FFCBottleneck3D

logger = logging.getLogger(__name__)

__all__ = ["feature_map", "make_block", "make_stage", "make_stem", "nonlocal_key", "ConvSpec", "StemSpec", "StageSpec", "FourierSpec", "ResNet3DSpec", "ResidualBlock3D", "ResNet3D", "STAGE_NAMES", "StageName"]

Triple = tuple[int, int, int]
#: The stages of the 3D ResNet family, in order (torchvision's naming); config, placement
#: and freezing name stages with these.
StageName = Literal["layer1", "layer2", "layer3", "layer4"]
STAGE_NAMES: tuple[str, ...] = get_args(StageName)


@dataclass(frozen=True)
class ConvSpec:
    """One conv of a residual block (or the stem).

    ``kernel`` is ``(t, h, w)``; padding is ``kernel // 2``. ``factorized=True`` is the
    (2+1)D conv of Tran et al.: a spatial ``1×h×w`` conv to ``mid_channels``, BN, ReLU,
    then a temporal ``t×1×1`` conv (an ``nn.Sequential``, keys ``.0``, ``.1``, ``.3``).
    """

    kernel: Triple
    factorized: bool = False

    @property
    def spatial(self) -> bool:
        return self.kernel[1] > 1 or self.kernel[2] > 1


@dataclass(frozen=True)
class StemSpec:
    """``conv1`` (with ``stride``) → ``bn1`` → ReLU → optional max-pool."""

    conv: ConvSpec
    stride: Triple = (1, 2, 2)
    out_channels: int = 64
    mid_channels: int | None = None  # factorized stem only (torchvision R(2+1)D: 45)
    pool_kernel: Triple | None = None
    pool_stride: Triple | None = None
    pool_padding: Triple | None = None


@dataclass(frozen=True)
class StageSpec:
    """One stage (``layerK``) of residual blocks.

    Args:
        depth: number of residual blocks.
        width: channels of the blocks' inner convs; the stage outputs ``width × expansion``.
        stride: ``(t, h, w)`` stride of the first block, applied by its first conv with a
            spatial kernel and by its ``downsample`` shortcut.
        conv_patterns: one tuple of :class:`ConvSpec` per block, cycled over the blocks
            (block ``i`` uses ``conv_patterns[i % len(conv_patterns)]``).
        pool_after: temporal max-pool ``(kernel = stride)`` applied after the stage
            (pytorchvideo's pool after res2 in I3D and C2D), or ``None``.
        global_ratio: FFC networks only: the share of global channels ``(in, out)`` of the
            stage's first block (later blocks use ``(out, out)``); see :mod:`.ffc`.
    """

    depth: int
    width: int
    stride: Triple
    conv_patterns: tuple[tuple[ConvSpec, ...], ...]
    pool_after: Triple | None = None
    global_ratio: tuple[float, float] = (0.0, 0.0)

    def convs_of_block(self, index: int) -> tuple[ConvSpec, ...]:
        return self.conv_patterns[index % len(self.conv_patterns)]


@dataclass(frozen=True)
class FourierSpec:
    """Makes every residual block an FFC block (:mod:`.ffc`; bottleneck or basic, as the
    trunk's ``block``): local Fourier unit on or off, and a per-frame (``"2d"``) or
    spatio-temporal (``"3d"``) FFT. The channel split is each stage's ``global_ratio``."""

    lfu: bool = False
    fft: Literal["2d", "3d"] = "2d"


@dataclass(frozen=True)
class ResNet3DSpec:
    """A whole backbone: stem, stages (``layer1..layer4``), head dropout."""

    block: Literal["basic", "bottleneck"]
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    dropout: float = 0.0
    in_channels: int = 3
    family: str = ""
    #: Residual shortcut where the shape changes: "B" = 1×1×1 conv + BN (every model here by
    #: default), "A" = Hara's parameter-free stride + zero channel padding (the 2017
    #: resnet-18/34 Kinetics checkpoints).
    shortcut: Literal["A", "B"] = "B"
    #: FFC backbones: every block is an :class:`~.ffc.FFCBottleneck3D` or
    #: :class:`~.ffc.FFCBasicBlock3D` (``None``: plain convs).
    fourier: FourierSpec | None = None
    #: ``(h, w)``: the head average-pools ``(T, h, w)`` windows at stride 1, applies dropout
    #: and ``fc`` to each and averages the scores (BAT-Video-Classification's fully
    #: convolutional head; on a map smaller than the window, each dimension falls back to its
    #: full size, i.e. global pooling). ``None``: global average pooling.
    head_window: tuple[int, int] | None = None

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    def stage_channels(self) -> dict[str, int]:
        """Output channels of each stage, by name."""
        return {name: s.width * self.expansion for name, s in zip(STAGE_NAMES, self.stages)}

    def stage_depths(self) -> dict[str, int]:
        return {name: s.depth for name, s in zip(STAGE_NAMES, self.stages)}


def _map_pair(fn, x):
    """Apply ``fn`` to a map, or to each tensor of an FFC ``(local, global)`` pair."""
    if isinstance(x, tuple):
        return tuple(fn(t) if isinstance(t, Tensor) else t for t in x)
    return fn(x)


def feature_map(x: "Tensor | tuple[Tensor, Tensor | int]") -> Tensor:
    """A block's output as one tensor: FFC blocks return ``(local, global)`` pairs, which are
    concatenated on channels (the stage's full width; ``global`` is the int 0 in res5)."""
    if not isinstance(x, tuple):
        return x
    x_l, x_g = x
    return x_l if isinstance(x_g, int) else torch.cat([x_l, x_g], dim=1)


def _apply_to_pair(block: nn.Module, x):
    """Run a non-local block on a map, or on an FFC pair concatenated on channels (split back after)."""
    if not isinstance(x, tuple):
        return block(x)
    x_l, x_g = x
    if isinstance(x_g, int):
        return block(x_l), x_g
    out = block(torch.cat([x_l, x_g], dim=1))
    return out[:, : x_l.shape[1]], out[:, x_l.shape[1] :]


def _padding(kernel: Triple) -> Triple:
    return (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)


def factorized_mid_channels(in_channels: int, out_channels: int, kernel: Triple) -> int:
    """Mid channels of a (2+1)D conv with as many parameters as the full ``kernel`` conv
    (Tran et al. 2018; torchvision computes it once per block from the block's input and
    output channels and uses it for both of the block's convs)."""
    t, h, w = kernel
    return (in_channels * out_channels * t * h * w) // (in_channels * h * w + t * out_channels)


def make_conv(
    spec: ConvSpec, in_channels: int, out_channels: int, *, stride: Triple = (1, 1, 1), mid_channels: int | None = None
) -> nn.Module:
    """The conv module of ``spec`` (bias-free, padding ``kernel // 2``)."""
    if not spec.factorized:
        return nn.Conv3d(
            in_channels, out_channels, spec.kernel, stride=stride, padding=_padding(spec.kernel), bias=False
        )
    if mid_channels is None:
        mid_channels = factorized_mid_channels(in_channels, out_channels, spec.kernel)
    t, h, w = spec.kernel
    return nn.Sequential(
        nn.Conv3d(
            in_channels, mid_channels, (1, h, w), stride=(1, stride[1], stride[2]), padding=(0, h // 2, w // 2), bias=False
        ),
        nn.BatchNorm3d(mid_channels),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid_channels, out_channels, (t, 1, 1), stride=(stride[0], 1, 1), padding=(t // 2, 0, 0), bias=False),
    )


class ZeroPadShortcut(nn.Module):
    """Hara's shortcut "A": keep every ``stride``-th position (a 1×1×1 average pool with that
    stride) and append zero channels up to ``out_channels``. No parameters.

    3D-ResNets-PyTorch builds the result from ``.data``, which cuts the gradient through
    this path; here it flows, as through any identity shortcut (same forward, so the same
    logits from the same checkpoint).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: Triple) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"shortcut A pads channels; it cannot go from {in_channels} to {out_channels}")
        self.extra = out_channels - in_channels
        self.stride = tuple(stride)

    def forward(self, x: Tensor) -> Tensor:
        st, sh, sw = self.stride
        out = x[:, :, ::st, ::sh, ::sw]
        return F.pad(out, (0, 0, 0, 0, 0, 0, 0, self.extra)) if self.extra else out

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


class ResidualBlock3D(nn.Module):
    """A basic (two convs) or bottleneck (three convs, ``expansion`` 4) residual block.

    ``convK`` → ``bnK`` (→ ReLU except after the last) for each conv of ``convs``; the
    stride goes to the first conv with a spatial kernel (Hara, torchvision and
    pytorchvideo all stride there), and the shortcut is ``downsample`` = 1×1×1 conv + BN
    (Hara's shortcut "B") when the stride or the channel count changes, or the parameter-free
    :class:`ZeroPadShortcut` with ``shortcut="A"``.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        *,
        convs: Sequence[ConvSpec],
        expansion: int,
        stride: Triple = (1, 1, 1),
        shortcut: Literal["A", "B"] = "B",
    ) -> None:
        super().__init__()
        if expansion == 1 and len(convs) != 2 or expansion == 4 and len(convs) != 3:
            raise ValueError(f"a block with expansion {expansion} needs {2 if expansion == 1 else 3} convs, got {len(convs)}")
        out_channels = width * expansion
        strided = next((i for i, c in enumerate(convs) if c.spatial), 0)
        # (2+1)D mid channels: one value per block, from its input and output widths (torchvision).
        mid = factorized_mid_channels(in_channels, width, (3, 3, 3))
        self.num_convs = len(convs)
        channels = [in_channels] + [width] * (len(convs) - 1) + [out_channels]
        for i, spec in enumerate(convs):
            self.add_module(
                f"conv{i + 1}",
                make_conv(
                    spec,
                    channels[i],
                    channels[i + 1],
                    stride=stride if i == strided else (1, 1, 1),
                    mid_channels=mid if spec.factorized else None,
                ),
            )
            self.add_module(f"bn{i + 1}", nn.BatchNorm3d(channels[i + 1]))
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if tuple(stride) != (1, 1, 1) or in_channels != out_channels:
            if shortcut == "A":
                self.downsample = ZeroPadShortcut(in_channels, out_channels, stride)
            elif shortcut == "B":
                self.downsample = nn.Sequential(
                    nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm3d(out_channels),
                )
            else:
                raise InvalidValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for i in range(1, self.num_convs + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.num_convs:
                out = self.relu(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def make_block(spec: ResNet3DSpec, stage: StageSpec, index: int, in_channels: int) -> nn.Module:
    """Residual block ``index`` of ``stage`` (its stride on block 0 only) taking ``in_channels``."""
    stride = stage.stride if index == 0 else (1, 1, 1)
    convs = stage.convs_of_block(index)
    if spec.fourier is None:
        return ResidualBlock3D(
            in_channels, stage.width, convs=convs, expansion=spec.expansion, stride=stride, shortcut=spec.shortcut
        )
    num_convs = 3 if spec.block == "bottleneck" else 2
    if len(convs) != num_convs or any(c.factorized for c in convs):
        raise ValueError(
            f"FFC backbones are built from {spec.block} blocks of {num_convs} plain (not factorized) convs"
        )
    ratio_in, ratio_out = stage.global_ratio
    block_class = FFCBottleneck3D if spec.block == "bottleneck" else FFCBasicBlock3D
    return block_class(
        in_channels,
        stage.width,
        kernels=tuple(c.kernel for c in convs),  # type: ignore[arg-type]
        stride=stride,
        ratio_gin=ratio_in if index == 0 else ratio_out,
        ratio_gout=ratio_out,
        lfu=spec.fourier.lfu,
        fft=spec.fourier.fft,
        # The released FFCResNet._make_layer: the first block of a stage gets a shortcut
        # conv when the stride or width changes or the stage input has no global part.
        downsample=index == 0
        and (tuple(stride) != (1, 1, 1) or in_channels != stage.width * spec.expansion or ratio_in == 0),
    )


def make_stem(stem: StemSpec, in_channels: int) -> tuple[nn.Module, nn.BatchNorm3d, nn.ReLU, nn.Module | None]:
    """The stem's ``(conv1, bn1, relu, maxpool)``, ``maxpool`` None without ``pool_kernel``; a
    model assigns them in this order, which is the order of their state-dict keys."""
    conv1 = make_conv(stem.conv, in_channels, stem.out_channels, stride=stem.stride, mid_channels=stem.mid_channels)
    maxpool = None
    if stem.pool_kernel is not None:
        maxpool = nn.MaxPool3d(stem.pool_kernel, stride=stem.pool_stride or stem.pool_kernel,
                               padding=stem.pool_padding or 0)
    return conv1, nn.BatchNorm3d(stem.out_channels), nn.ReLU(inplace=True), maxpool


def make_stage(spec: ResNet3DSpec, stage: StageSpec, in_channels: int) -> nn.Sequential:
    """The residual blocks of ``stage`` as an ``nn.Sequential`` whose first block takes
    ``in_channels`` (more than the previous stage's output where a lateral connection
    concatenates channels, as in SlowFast's slow pathway)."""
    blocks = []
    for index in range(stage.depth):
        blocks.append(make_block(spec, stage, index, in_channels))
        in_channels = stage.width * spec.expansion
    return nn.Sequential(*blocks)


class ResNet3D(VideoBackbone):
    """Stem → ``layer1..layer4`` (with non-local blocks after chosen residual blocks) →
    global average pool → dropout → ``fc``.

    Input ``(B, C, T, H, W)``; output logits ``(B, num_classes)``. Build instances with
    :func:`snl_video.models.build_model`.
    """

    def __init__(self, spec: ResNet3DSpec, *, num_classes: int) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise InvalidValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if len(spec.stages) != len(STAGE_NAMES):
            raise ValueError(f"a ResNet3DSpec needs {len(STAGE_NAMES)} stages, got {len(spec.stages)}")
        self.spec = spec
        self.num_classes = num_classes
        stem = spec.stem
        self.conv1, self.bn1, self.relu, self.maxpool = make_stem(stem, spec.in_channels)
        channels = stem.out_channels
        self._pools_after: dict[str, Triple] = {}
        for name, stage in zip(STAGE_NAMES, spec.stages):
            self.add_module(name, make_stage(spec, stage, channels))
            channels = stage.width * spec.expansion
            if stage.pool_after is not None:
                self._pools_after[name] = stage.pool_after
        self.feature_channels = channels
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        # Non-local blocks, keyed "<stage>_after_<block index>"; filled by placement.
        self.nonlocal_blocks = nn.ModuleDict()
        self.reset_parameters()

    def forward_maps(self, x: Tensor) -> Tensor:
        """The last stage's feature map ``(B, feature_channels, T', H', W')`` (before the head).

        FFC backbones carry ``(local, global)`` pairs between blocks: a non-local block placed
        there sees both parts concatenated on channels (the stage's full width) and its output
        is split back; after ``layer4`` only the local part is left (its global ratio is 0).
        """
        self.check_clip(x)
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for name in STAGE_NAMES:
            x = self.run_stage(name, getattr(self, name), x, _apply_to_pair)
            pool = self._pools_after.get(name)
            if pool is not None:
                x = _map_pair(lambda t: nn.functional.max_pool3d(t, kernel_size=pool, stride=pool), x)
        return feature_map(x)

    def head_windows(self, x: Tensor) -> Tensor:
        """BAT's head: ``(T, h, w)`` average windows at stride 1 (``head_window``), ``(B, C, 1, H', W')``."""
        assert self.spec.head_window is not None
        h, w = self.spec.head_window
        kernel = (x.shape[2], min(h, x.shape[3]), min(w, x.shape[4]))
        return nn.functional.avg_pool3d(x, kernel_size=kernel, stride=1)

    def forward_features(self, x: Tensor) -> Tensor:
        """The pooled features ``(B, feature_channels)`` before dropout and ``fc``.

        With a windowed head (``spec.head_window``) these are the windows' mean, so
        ``fc(forward_features(x))`` equals the mean of the per-window scores (``fc`` is linear).
        """
        x = self.forward_maps(x)
        if self.spec.head_window is not None:
            return self.head_windows(x).mean(dim=(2, 3, 4))
        return self.avgpool(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        if self.spec.head_window is not None:
            # Dropout acts on every window before fc; fc of the windows' mean = mean of their scores.
            return self.fc(self.dropout(self.head_windows(self.forward_maps(x))).mean(dim=(2, 3, 4)))
        return self.fc(self.dropout(self.forward_features(x)))
