"""Video transforms on ``torchvision.transforms.v2``.

Input: a clip as decoded, ``uint8 (T, H, W, 3)``. Output: the model's layout,
``float32 (C, T, H, W)`` (or ``(M, C, T, H, W)`` for M spatial crops). The clip is
converted to ``(T, C, H, W)`` once, wrapped as a ``tv_tensors.Video`` so that every v2 op
draws ONE set of random parameters for the whole clip (the same crop and flip in every
frame), and the spatial work runs on uint8 before the float conversion (4x less memory).
The last step, :class:`NormalizeToModel`, fuses to-float, normalise and the layout change
into one pass (same numbers as ``v2.ToDtype`` + ``v2.Normalize``; 4x faster end to end).

Normalisation comes from the model's :class:`~snl_video.inputspec.InputSpec` (or a bare
:class:`NormalizationSpec`): pixels are scaled to ``[0, value_scale]`` and then
``(x - mean) / std``. Two different "Kinetics" statistics exist and are named by their
source: :data:`HARA_KINETICS_NORMALIZATION` (3D-ResNets-PyTorch, the toolkit's default) and
:data:`TORCHVISION_KINETICS_NORMALIZATION` (torchvision's video weights); Hara's 2017
release and Caffe-style weights use 0-255 values (``value_scale=255``).
:func:`input_transform` is the evaluation transform an input spec describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor, nn
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..errors import InvalidValueError
from ..inputspec import (
    HARA_KINETICS_MEAN,
    HARA_KINETICS_STD,
    TORCHVISION_KINETICS_MEAN,
    TORCHVISION_KINETICS_STD,
    InputSpec,
    rgb_triple,
)

__all__ = [
    "NormalizationSpec",
    "ToVideo",
    "MultiScaleRandomCrop",
    "ThreeCrop",
    "NormalizeToModel",
    "ToModelLayout",
    "train_transform",
    "eval_transform",
    "input_transform",
    "HARA_KINETICS_NORMALIZATION",
    "TORCHVISION_KINETICS_NORMALIZATION",
    "KINETICS_NORMALIZATION",
]


@dataclass(frozen=True)
class NormalizationSpec:
    """``mean``/``std`` per RGB channel, in units where a white pixel is ``value_scale``."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    value_scale: float = 1.0

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise InvalidValueError(f"mean and std need 3 values (RGB), got {self.mean} and {self.std}")
        if any(s <= 0 for s in self.std) or self.value_scale <= 0:
            raise InvalidValueError(f"std and value_scale must be > 0, got std={self.std}, value_scale={self.value_scale}")

    @classmethod
    def from_any(cls, spec: "NormalizationSpec | InputSpec | Mapping") -> "NormalizationSpec":
        """Accept the spec itself, an :class:`~snl_video.inputspec.InputSpec`, or a mapping
        with ``mean``, ``std`` and optional ``value_scale``."""
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, InputSpec):
            return cls(spec.mean, spec.std, float(spec.value_scale))
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"mean", "std", "value_scale"}
            if unknown or not {"mean", "std"} <= set(spec):
                raise InvalidValueError(f"a normalisation spec needs keys mean, std [, value_scale]; got {sorted(spec)}")
            return cls(tuple(spec["mean"]), tuple(spec["std"]), float(spec.get("value_scale", 1.0)))
        # duck typing: a weights entry object carrying the three attributes
        if all(hasattr(spec, k) for k in ("mean", "std")):
            return cls(rgb_triple(spec.mean), rgb_triple(spec.std), float(getattr(spec, "value_scale", 1.0)))
        raise TypeError(f"cannot read mean/std/value_scale from {type(spec).__name__}")

    def normalize(self) -> v2.Normalize:
        """The equivalent ``v2.Normalize`` on pixels already in [0, 1]."""
        return v2.Normalize(mean=[m / self.value_scale for m in self.mean], std=[s / self.value_scale for s in self.std])


#: Kinetics-400 statistics as torchvision's video weights use them (value_scale 1).
TORCHVISION_KINETICS_NORMALIZATION = NormalizationSpec(mean=TORCHVISION_KINETICS_MEAN, std=TORCHVISION_KINETICS_STD)
#: 3D-ResNets-PyTorch's Kinetics statistics on a [0, 1] scale: the default when neither the
#: recipe (``data.mean/std``) nor a registry entry gives the normalisation.
HARA_KINETICS_NORMALIZATION = NormalizationSpec(mean=HARA_KINETICS_MEAN, std=HARA_KINETICS_STD)
#: Deprecated name of :data:`TORCHVISION_KINETICS_NORMALIZATION` (kept for existing scripts).
KINETICS_NORMALIZATION = TORCHVISION_KINETICS_NORMALIZATION


class ToVideo(nn.Module):
    """``uint8 (T, H, W, C)`` -> ``tv_tensors.Video (T, C, H, W)``, the one layout change on the way in."""

    def forward(self, clip: Tensor) -> tv_tensors.Video:
        if clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(f"expected a clip (T, H, W, 3), got shape {tuple(clip.shape)}")
        return tv_tensors.Video(clip.permute(0, 3, 1, 2))


class ToModelLayout(nn.Module):
    """``(..., T, C, H, W)`` -> ``(..., C, T, H, W)`` plain tensor, the one layout change on the way out."""

    def forward(self, video: Tensor) -> Tensor:
        return video.as_subclass(Tensor).transpose(-4, -3).contiguous()


class NormalizeToModel(nn.Module):
    """uint8 ``(..., T, C, H, W)`` -> normalised float32 ``(..., C, T, H, W)``, in one pass.

    The same numbers as ``v2.ToDtype(float32, scale=True)`` + ``v2.Normalize`` + a permute
    (the tests check it against them), but fused: those three each walk the whole float
    clip, on the strided layout the crop leaves, and cost 3-4x more than the crop itself.
    Here the permute happens on uint8 (4x fewer bytes) and the affine map is one
    ``x * a - b`` per channel.
    """

    scale: Tensor  # buffers (register_buffer), typed for the type checker
    shift: Tensor

    def __init__(self, spec: NormalizationSpec) -> None:
        super().__init__()
        std = torch.tensor(spec.std, dtype=torch.float32) / spec.value_scale
        mean = torch.tensor(spec.mean, dtype=torch.float32) / spec.value_scale
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(3, 1, 1, 1), persistent=False)
        self.register_buffer("shift", (mean / std).view(3, 1, 1, 1), persistent=False)

    def forward(self, video: Tensor) -> Tensor:
        plain = video.as_subclass(Tensor)
        if plain.dtype != torch.uint8:
            raise ValueError(f"NormalizeToModel expects uint8 frames, got {plain.dtype}")
        out = plain.transpose(-4, -3).contiguous().to(torch.float32)
        return out.mul_(self.scale).sub_(self.shift)


class MultiScaleRandomCrop(nn.Module):
    """3D-ResNets-style multi-scale crop: a square of side ``scale * short_side`` (scale drawn
    from ``scales``) at a random position, resized to ``size`` x ``size``."""

    def __init__(self, size: int, scales: Sequence[float] = (1.0, 2 ** -0.25, 2 ** -0.5, 2 ** -0.75, 0.5)) -> None:
        super().__init__()
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise InvalidValueError(f"scales must be in (0, 1], got {scales}")
        self.size, self.scales = size, tuple(scales)

    def forward(self, video: Tensor) -> Tensor:
        height, width = video.shape[-2:]
        scale = self.scales[int(torch.randint(len(self.scales), ()))]
        side = max(1, int(min(height, width) * scale))
        top = int(torch.randint(height - side + 1, ()))
        left = int(torch.randint(width - side + 1, ()))
        out = F.crop(video, top, left, side, side)
        return F.resize(out, [self.size, self.size], antialias=True)


class ThreeCrop(nn.Module):
    """Three ``size`` x ``size`` crops spread along the long side (start, centre, end), stacked on a new dim 0."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, video: Tensor) -> Tensor:
        height, width = video.shape[-2:]
        if min(height, width) < self.size:
            raise InvalidValueError(f"ThreeCrop({self.size}) needs frames at least that big, got {height}x{width}")
        crops = []
        for pos in (0.0, 0.5, 1.0):
            top = int(round((height - self.size) * pos)) if height > width else (height - self.size) // 2
            left = int(round((width - self.size) * pos)) if width >= height else (width - self.size) // 2
            crops.append(F.crop(video, top, left, self.size, self.size))
        return tv_tensors.wrap(torch.stack([c.as_subclass(Tensor) for c in crops]), like=video)


def train_transform(
    normalization: NormalizationSpec | InputSpec | Mapping,
    *,
    size: int = 112,
    crop: Literal["random_resized", "multiscale"] = "random_resized",
    scale: tuple[float, float] = (0.25, 1.0),
    flip: bool = True,
) -> v2.Compose:
    """Training: random-resized (or multi-scale) crop to ``size``, horizontal flip, normalise."""
    spec = NormalizationSpec.from_any(normalization)
    if crop == "random_resized":
        cropper: nn.Module = v2.RandomResizedCrop(size, scale=scale, ratio=(3 / 4, 4 / 3), antialias=True)
    elif crop == "multiscale":
        cropper = MultiScaleRandomCrop(size)
    else:
        raise InvalidValueError(f"crop must be 'random_resized' or 'multiscale', got {crop!r}")
    steps: list[nn.Module] = [ToVideo(), cropper]
    if flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps.append(NormalizeToModel(spec))
    return v2.Compose(steps)


def eval_transform(
    normalization: NormalizationSpec | InputSpec | Mapping,
    *,
    size: int = 112,
    crops: Literal[1, 3] = 1,
    resize: int | tuple[int, int] | None = None,
) -> v2.Compose:
    """Test: resize (``resize``: a short side, or a fixed ``(height, width)`` as torchvision's
    video models were evaluated; ``None``: the short side to ``size``), then the centre crop
    (``crops=1``, output ``(C, T, size, size)``) or three crops along the long side
    (``crops=3``, output ``(3, C, T, size, size)``), normalise."""
    spec = NormalizationSpec.from_any(normalization)
    if resize is None:
        resize = size
    short_side = resize if isinstance(resize, int) else min(resize)
    if short_side < size:
        raise InvalidValueError(f"eval transform: resize {resize!r} is smaller than the crop {size}; give a resize "
                                "of at least the crop size (or none: the short side goes to the crop size)")
    if crops == 1:
        cropper: nn.Module = v2.CenterCrop(size)
    elif crops == 3:
        cropper = ThreeCrop(size)
    else:
        raise InvalidValueError(f"crops must be 1 or 3, got {crops!r}")
    return v2.Compose(
        [ToVideo(), v2.Resize(resize if isinstance(resize, int) else list(resize), antialias=True), cropper,
         NormalizeToModel(spec)]
    )


def input_transform(spec: InputSpec, *, crops: Literal[1, 3] = 1) -> v2.Compose:
    """The test-time transform ``spec`` describes: frames resized as ``spec.resize`` says (a
    registry entry's published resize, e.g. torchvision's 128x171 before its 112 crop, or
    256 before a 224 crop; ``None``, the toolkit's own recipe: short side to
    ``spec.crop_size``), the centre crop (or three crops), normalised with ``spec``'s
    mean/std/value scale.

    This is what ``eval`` does to a clip, and what predict, explain, features and spectrum
    call, so a model is fed the same way by every verb, and as its published protocol was.
    (Until this honoured ``spec.resize``, every verb resized the short side to the crop and
    fed such entries a wider view than the one their accuracy was reported at, while the
    records it wrote said ``resize``.)
    """
    return eval_transform(spec, size=spec.crop_size, crops=crops, resize=spec.resize)
