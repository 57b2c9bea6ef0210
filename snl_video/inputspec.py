"""The input a network expects, as one frozen value: :class:`InputSpec`.

Clip length, frame stride, resize, crop, mean/std with their value scale, and the frame
rate when the recipe fixes one. The same value travels everywhere a model goes: registry
entries of pretrained weights (:mod:`snl_video.weights.registry`), training checkpoints
(stored as :meth:`InputSpec.to_dict`, plain data that reads with ``weights_only=True``),
the evaluation transforms (:func:`snl_video.data.transforms.eval_transform` takes it as its
normalisation) and inference (:class:`snl_video.engine.loading.InferenceModel`). Before it
existed the same facts lived in five shapes that had started to drift.

It sits in the utility layer (no import from the rest of the package), so every layer
above can use it. Field names follow the YAML recipe (``data.num_frames``,
``data.sampling_stride``, ``data.crop_size``, ``data.mean``, ``data.std``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, cast
from .errors import InvalidValueError

__all__ = ["InputSpec", "HARA_ACTIVITYNET_MEAN", "HARA_KINETICS_MEAN", "HARA_KINETICS_STD",
           "TORCHVISION_KINETICS_MEAN", "TORCHVISION_KINETICS_STD", "PYTORCHVIDEO_KINETICS_MEAN",
           "PYTORCHVIDEO_KINETICS_STD", "TORCHVISION_IMAGENET_MEAN", "TORCHVISION_IMAGENET_STD",
           "CAFFE_IMAGENET_BGR_MEAN", "rgb_triple"]

#: 3D-ResNets-PyTorch (Hara et al.), ``mean.py`` ``get_mean('activitynet')``: per-channel
#: RGB mean of ActivityNet on a 0-255 scale, used with no std by its 2017 Kinetics release.
HARA_ACTIVITYNET_MEAN: tuple[float, float, float] = (114.7748, 107.7354, 99.4750)
#: 3D-ResNets-PyTorch (Hara et al.), ``mean.py`` ``get_mean/get_std('kinetics')`` divided by
#: 255 (its 2020 release feeds pixels in [0, 1]): the toolkit's default normalisation.
HARA_KINETICS_MEAN: tuple[float, float, float] = (0.4345, 0.4051, 0.3775)
HARA_KINETICS_STD: tuple[float, float, float] = (0.2768, 0.2713, 0.2737)
#: torchvision's video weights (``transforms/_presets.py`` ``VideoClassification``) on
#: [0, 1] pixels: the Kinetics-400 statistics its R3D / MC3 / R(2+1)D models were trained with.
TORCHVISION_KINETICS_MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
TORCHVISION_KINETICS_STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)
#: pytorchvideo's Kinetics model zoo (``Normalize((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))``) on [0, 1] pixels.
PYTORCHVIDEO_KINETICS_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
PYTORCHVIDEO_KINETICS_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)
#: torchvision's ImageNet statistics (``transforms.Normalize`` of its image classifiers) on [0, 1] pixels.
TORCHVISION_IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
TORCHVISION_IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Caffe's ImageNet means in B, G, R order on a 0-255 scale (used with std 1).
CAFFE_IMAGENET_BGR_MEAN: tuple[float, float, float] = (103.939, 116.779, 123.68)

def rgb_triple(values: Iterable[float]) -> tuple[float, float, float]:
    """``tuple(values)``, typed as the per-channel (R, G, B) triple a mean or std is.

    Only the type changes here, not the value: the length is checked where the triple lands
    (:class:`InputSpec`, :class:`~snl_video.data.transforms.NormalizationSpec` and the
    config's validation each reject anything but 3 values with a message saying so).
    """
    return cast("tuple[float, float, float]", tuple(values))


_REQUIRED = ("num_frames", "sampling_stride", "crop_size", "mean", "std")


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """What a network must be fed: the clip and its pixel normalisation.

    ``num_frames`` frames are taken ``sampling_stride`` frames apart; each frame is resized
    (``resize``: the short side in pixels, a fixed ``(height, width)``, or ``None`` for the
    toolkit's own recipe: short side to ``crop_size``) and centre-cropped to ``crop_size``
    square. Pixels are scaled to ``[0, value_scale]`` (1 or 255), minus ``mean``, divided by
    ``std`` (both in that scale; a ``std`` of 1 means "not divided"). ``fps`` is set when
    the recipe resamples videos to that frame rate first; ``None`` when it does not.
    """

    num_frames: int
    sampling_stride: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    value_scale: float = 1.0
    resize: int | tuple[int, int] | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        for name in ("num_frames", "sampling_stride", "crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"input spec: {name} must be a positive integer, got {value!r}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != 3 or len(self.std) != 3:
            raise InvalidValueError(f"input spec: mean and std need 3 values (RGB), got {self.mean} and {self.std}")
        if min(self.std) <= 0 or self.value_scale <= 0:
            raise InvalidValueError(f"input spec: std and value_scale must be > 0, got std={self.std}, "
                             f"value_scale={self.value_scale}")
        if isinstance(self.resize, (list, tuple)):
            if len(self.resize) != 2:
                raise InvalidValueError(f"input spec: resize is a short side or (height, width), got {self.resize!r}")
            object.__setattr__(self, "resize", (int(self.resize[0]), int(self.resize[1])))
        if self.fps is not None and self.fps <= 0:
            raise InvalidValueError(f"input spec: fps must be > 0 or None, got {self.fps}")

    @property
    def short_side(self) -> int:
        """The short side frames are resized to before the crop."""
        if self.resize is None:
            return self.crop_size
        return self.resize if isinstance(self.resize, int) else min(self.resize)

    def replace(self, **changes: Any) -> "InputSpec":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (ints, floats, lists, None): what a checkpoint stores."""
        return {
            "num_frames": int(self.num_frames),
            "sampling_stride": int(self.sampling_stride),
            "crop_size": int(self.crop_size),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "value_scale": float(self.value_scale),
            "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
            "fps": None if self.fps is None else float(self.fps),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "input spec") -> "InputSpec":
        """The inverse of :meth:`to_dict`; an unknown or missing key is an error naming it."""
        if not isinstance(data, Mapping):
            raise InvalidValueError(f"{where}: expected a mapping with keys {', '.join(_REQUIRED)}, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        missing = [k for k in _REQUIRED if k not in data]
        if unknown or missing:
            raise InvalidValueError(f"{where}: " + "; ".join(
                ([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else []))
                + f" (an input spec has {', '.join(sorted(fields))})")
        values = dict(data)
        resize = values.get("resize")
        if isinstance(resize, list):
            values["resize"] = tuple(resize)
        return cls(**values)

    @classmethod
    def from_legacy_checkpoint(cls, normalization: Mapping[str, Any], clip: Mapping[str, Any]) -> "InputSpec":
        """The spec of a checkpoint written before it stored one: its ``normalization``
        (``mean``, ``std``, ``value_scale``) and ``clip`` (``num_frames``, ``sampling_stride``,
        ``crop_size``) dicts."""
        return cls(num_frames=int(clip["num_frames"]), sampling_stride=int(clip["sampling_stride"]),
                   crop_size=int(clip["crop_size"]), mean=tuple(normalization["mean"]),
                   std=tuple(normalization["std"]), value_scale=float(normalization.get("value_scale", 1.0)))
