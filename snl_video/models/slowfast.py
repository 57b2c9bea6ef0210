"""SlowFast networks (Feichtenhofer et al., ICCV 2019): two ResNet pathways of one stage
pattern joined by lateral connections, built from :mod:`.resnet3d`'s stages.

* The **slow** pathway is :func:`~.architectures.pytorchvideo_resnet50` ``("slow")`` (stem
  ``1×7×7``, temporal ``3×1×1`` first convs in res4 and res5 only). The **fast** pathway has
  the same stages with every width divided by ``β⁻¹`` (8), a ``5×7×7`` stem and temporal
  first convs in every stage. Both are :class:`ResNetPathway` objects whose stages are
  :func:`~.resnet3d.make_stage` outputs, i.e. the blocks of :class:`~.resnet3d.ResNet3D`.
* A **lateral connection** after the stem and after res2, res3, res4 maps the fast map to
  the slow one with a ``k×1×1`` conv of temporal stride ``α`` (``2·C_fast`` channels), BN and
  ReLU, and concatenates it to the slow map's channels ("time-strided convolution", the
  paper's best fusion); so the slow stage that follows takes ``C + 2C/β⁻¹`` channels.
* The head averages each pathway's last map globally, concatenates (slow first), applies
  dropout and ``fc``.

Settings (PySlowFast ``SLOWFAST_{8x8,4x16}_R50.yaml``, pytorchvideo ``create_slowfast``):
``8x8``: α = 4, fusion kernel 7; ``4x16``: α = 8, fusion kernel 5; both β⁻¹ = 8, fusion
channel ratio 2, and a 32-frame fast input (8 or 4 slow frames).

**Input.** The model takes one clip ``(B, C, T, H, W)`` — the fast pathway's frames — and
derives the slow pathway inside by the temporal subsampling PySlowFast's and pytorchvideo's
``PackPathway`` apply to the loaded clip (``T // α`` frames at
``linspace(0, T - 1, T // α)`` rounded down), so the rest of the toolkit (transforms,
predict, export) keeps handling one tensor. ``T`` must be a multiple of ``α`` (the lateral
conv then yields exactly ``T // α`` frames). A ``[slow, fast]`` pair, pytorchvideo's own
input, is accepted too.

Non-local blocks are placed by pathway-qualified stage names (``slow.layer3``,
``fast.res4``; :mod:`.placement`); they live in ``nonlocal_blocks`` under keys such as
``slow_layer3_after_4`` and see that residual block's output (before any lateral concat).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from .backbone import VideoBackbone
from .resnet3d import STAGE_NAMES, ConvSpec, ResNet3DSpec, make_stage, make_stem
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "PATHWAYS",
    "SLOWFAST_SETTINGS",
    "SlowFastSpec",
    "ResNetPathway",
    "LateralConnection",
    "SlowFast3D",
    "slowfast_resnet50",
    "slow_pathway_indices",
]

PATHWAYS: tuple[str, str] = ("slow", "fast")
#: setting → (α, fusion kernel), from PySlowFast's SLOWFAST_8x8_R50 / SLOWFAST_4x16_R50 configs.
SLOWFAST_SETTINGS: dict[str, tuple[int, int]] = {"8x8": (4, 7), "4x16": (8, 5)}


@dataclass(frozen=True)
class SlowFastSpec:
    """A SlowFast network as data: the two pathways and how they are joined.

    Args:
        slow, fast: the pathways' stems and stages (their ``dropout`` is unused: the
            head's is ``dropout`` here).
        alpha: frame-rate ratio α (fast frames per slow frame); also the lateral conv's
            temporal stride.
        fusion_kernel: temporal kernel of the lateral convs.
        fusion_channel_ratio: the lateral conv maps ``C_fast`` to ``ratio · C_fast`` channels.
        dropout: head dropout.
        head_window: ``(h, w)`` for pytorchvideo's windowed head: each pathway's last map
            average-pooled in (T, h, w) windows at stride 1 (a window takes a dimension smaller
            than it whole), each window scored, the scores averaged; ``None``: a global average.
            Their hub model uses (7, 7): the same up to 224² crops, four windows at 256².
    """

    slow: ResNet3DSpec
    fast: ResNet3DSpec
    alpha: int
    fusion_kernel: int
    fusion_channel_ratio: int = 2
    dropout: float = 0.5
    in_channels: int = 3
    family: str = "slowfast"
    head_window: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.alpha < 1 or self.fusion_kernel < 1 or self.fusion_kernel % 2 == 0:
            raise ValueError(
                f"a SlowFast spec needs alpha >= 1 and an odd fusion_kernel, got alpha={self.alpha}, "
                f"fusion_kernel={self.fusion_kernel}"
            )
        if [s.depth for s in self.slow.stages] != [s.depth for s in self.fast.stages]:
            raise ValueError("the slow and fast pathways must have the same stage depths")
        if self.head_window is not None:
            window = tuple(int(v) for v in self.head_window)
            if len(window) != 2 or min(window) < 1:
                raise ValueError(f"head_window must be (h, w), two positive ints, or None for a global average, "
                                 f"got {self.head_window!r}")
            object.__setattr__(self, "head_window", window)

    def lateral_channels(self) -> dict[str, int]:
        """Channels each lateral connection adds to the slow map, keyed by where it sits
        (``stem``, ``layer1``..``layer3``; none after the last stage)."""
        fast = {"stem": self.fast.stem.out_channels, **self.fast.stage_channels()}
        return {k: fast[k] * self.fusion_channel_ratio for k in ("stem", *STAGE_NAMES[:-1])}

    def stage_channels(self) -> dict[str, int]:
        """Output channels of every residual block of each pathway stage (``slow.layer3``, …)."""
        return {f"{p}.{k}": v for p in PATHWAYS for k, v in getattr(self, p).stage_channels().items()}

    def stage_depths(self) -> dict[str, int]:
        return {f"{p}.{k}": v for p in PATHWAYS for k, v in getattr(self, p).stage_depths().items()}


def slowfast_resnet50(
    slow: ResNet3DSpec, *, setting: Literal["8x8", "4x16"] = "8x8", beta_inv: int = 8, dropout: float = 0.5
) -> SlowFastSpec:
    """SlowFast R50 of ``setting`` around the ``slow`` pathway spec (pytorchvideo's
    ``slow_r50`` trunk): the fast pathway is ``slow`` with widths ÷ ``beta_inv``, a ``5×7×7``
    stem and ``3×1×1`` first convs in every stage."""
    if setting not in SLOWFAST_SETTINGS:
        raise InvalidValueError(f"SlowFast setting must be one of {list(SLOWFAST_SETTINGS)}, got {setting!r}")
    if isinstance(beta_inv, bool) or not isinstance(beta_inv, int) or beta_inv < 1:
        raise InvalidValueError(f"beta_inv (fast-pathway channel divisor) must be a positive int, got {beta_inv!r}")
    alpha, fusion_kernel = SLOWFAST_SETTINGS[setting]
    temporal = ConvSpec((3, 1, 1))
    fast_stages = tuple(
        dataclasses.replace(
            s,
            width=s.width // beta_inv,
            conv_patterns=tuple((temporal, *pattern[1:]) for pattern in s.conv_patterns),
        )
        for s in slow.stages
    )
    fast_stem = dataclasses.replace(
        slow.stem, conv=ConvSpec((5, *slow.stem.conv.kernel[1:])), out_channels=slow.stem.out_channels // beta_inv
    )
    fast = dataclasses.replace(slow, stem=fast_stem, stages=fast_stages, family="slowfast-fast")
    return SlowFastSpec(
        slow=dataclasses.replace(slow, family="slowfast-slow"),
        fast=fast,
        alpha=alpha,
        fusion_kernel=fusion_kernel,
        dropout=dropout,
    )


def slow_pathway_indices(num_frames: int, alpha: int) -> Tensor:
    """Frame indices of the slow pathway within a ``num_frames`` fast clip: ``num_frames // α``
    indices ``linspace(0, num_frames - 1, ·)`` rounded down (PySlowFast's ``pack_pathway_output``)."""
    return torch.linspace(0, num_frames - 1, num_frames // alpha).long()


class ResNetPathway(nn.Module):
    """One pathway: stem (``conv1`` → ``bn1`` → ReLU → optional max-pool) and ``layer1..layer4``
    built by :func:`~.resnet3d.make_stage`, whose first blocks take ``extra_in_channels``
    more channels than the previous stage gives (the lateral connections' share)."""

    def __init__(self, spec: ResNet3DSpec, *, extra_in_channels: Sequence[int] = (0, 0, 0, 0)) -> None:
        super().__init__()
        if len(spec.stages) != len(STAGE_NAMES) or len(extra_in_channels) != len(STAGE_NAMES):
            raise ValueError(f"a pathway needs {len(STAGE_NAMES)} stages and as many extra input widths")
        stem = spec.stem
        self.conv1, self.bn1, self.relu, self.maxpool = make_stem(stem, spec.in_channels)
        channels = stem.out_channels
        for name, stage, extra in zip(STAGE_NAMES, spec.stages, extra_in_channels):
            self.add_module(name, make_stage(spec, stage, channels + extra))
            channels = stage.width * spec.expansion
        self.out_channels = channels

    def forward_stem(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return x if self.maxpool is None else self.maxpool(x)


class LateralConnection(nn.Module):
    """Fast → slow: ``conv`` (``k×1×1``, temporal stride α, no bias) → ``bn`` → ReLU, the result
    concatenated after the slow map's channels."""

    def __init__(self, fast_channels: int, out_channels: int, *, kernel: int, alpha: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            fast_channels, out_channels, (kernel, 1, 1), stride=(alpha, 1, 1), padding=(kernel // 2, 0, 0), bias=False
        )
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, slow: Tensor, fast: Tensor) -> Tensor:
        return torch.cat([slow, self.relu(self.bn(self.conv(fast)))], dim=1)


class SlowFast3D(VideoBackbone):
    """Slow and fast :class:`ResNetPathway` objects joined by ``laterals``, a global-average
    head over both (``fc``), and non-local blocks placeable in either pathway.

    Input: one clip ``(B, C, T, H, W)`` (the fast frames; the slow ones are subsampled
    inside, see the module doc) or a ``[slow, fast]`` pair. Output: logits ``(B, num_classes)``.
    Build instances with :func:`snl_video.models.build_model` (``"slowfast_r50"``).
    """

    def __init__(self, spec: SlowFastSpec, *, num_classes: int) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.spec = spec
        self.num_classes = num_classes
        lateral = spec.lateral_channels()
        extra_slow = [lateral["stem"], *(lateral[name] for name in STAGE_NAMES[:-1])]
        self.slow = ResNetPathway(spec.slow, extra_in_channels=extra_slow)
        self.fast = ResNetPathway(spec.fast)
        fast_in = {"stem": spec.fast.stem.out_channels, **spec.fast.stage_channels()}
        self.laterals = nn.ModuleDict(
            {
                name: LateralConnection(fast_in[name], channels, kernel=spec.fusion_kernel, alpha=spec.alpha)
                for name, channels in lateral.items()
            }
        )
        self.feature_channels = self.slow.out_channels + self.fast.out_channels
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.feature_channels, num_classes)
        # Non-local blocks, keyed "<pathway>_<stage>_after_<block index>"; filled by placement.
        self.nonlocal_blocks = nn.ModuleDict()
        self.reset_parameters()

    def pathway_inputs(self, x: "Tensor | Sequence[Tensor]") -> tuple[Tensor, Tensor]:
        """``(slow, fast)`` clips from one fast clip (subsampled by α) or a ``[slow, fast]`` pair."""
        channels = self.spec.in_channels
        if isinstance(x, (list, tuple)):
            if len(x) != 2 or not all(isinstance(t, Tensor) and t.dim() == 5 for t in x):
                raise InvalidValueError(f"a SlowFast input pair must be [slow, fast], two (B, {channels}, T, H, W) tensors")
            return x[0], x[1]
        if not isinstance(x, Tensor) or x.dim() != 5 or x.shape[1] != channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected a clip batch (B, {channels}, T, H, W), got {shape}")
        frames, alpha = x.shape[2], self.spec.alpha
        if frames % alpha:
            raise ValueError(
                f"SlowFast with alpha={alpha} needs a clip whose length is a multiple of {alpha} (the slow "
                f"pathway takes every {alpha}-th frame), got T={frames}: use e.g. {max(alpha, frames - frames % alpha)} frames"
            )
        return x.index_select(2, slow_pathway_indices(frames, alpha).to(x.device)), x

    def _run_stage(self, pathway: str, stage: str, x: Tensor) -> Tensor:
        # non-local keys name the pathway-qualified stage (``slow.layer3`` -> ``slow_layer3_after_<i>``)
        return self.run_stage(f"{pathway}.{stage}", getattr(getattr(self, pathway), stage), x)

    def forward_maps(self, x: "Tensor | Sequence[Tensor]") -> tuple[Tensor, Tensor]:
        """The last stage's maps of the slow and fast pathways (before the head)."""
        slow, fast = self.pathway_inputs(x)
        slow, fast = self.slow.forward_stem(slow), self.fast.forward_stem(fast)
        slow = self.laterals["stem"](slow, fast)
        for stage in STAGE_NAMES:
            slow = self._run_stage("slow", stage, slow)
            fast = self._run_stage("fast", stage, fast)
            if stage in self.laterals:
                slow = self.laterals[stage](slow, fast)
        return slow, fast

    def forward_features(self, x: "Tensor | Sequence[Tensor]") -> Tensor:
        """Pooled features ``(B, feature_channels)``: each pathway averaged, slow then fast.

        With ``spec.head_window`` these are the windows' mean, so ``fc`` of them equals the
        mean of the per-window scores (``fc`` is linear), as pytorchvideo's head computes them."""
        slow, fast = self.forward_maps(x)
        return torch.cat([self._pool(slow), self._pool(fast)], dim=1)

    def _pool(self, x: Tensor) -> Tensor:
        window = self.spec.head_window
        if window is None:
            return self.avgpool(x).flatten(1)
        kernel = (x.shape[2], min(window[0], x.shape[3]), min(window[1], x.shape[4]))
        return nn.functional.avg_pool3d(x, kernel_size=kernel, stride=1).mean(dim=(2, 3, 4))

    def forward(self, x: "Tensor | Sequence[Tensor]") -> Tensor:
        return self.fc(self.dropout(self.forward_features(x)))
