"""3D ResNet backbones, non-local placement, the model registry and profiling.

``build_model(name, num_classes=..., nonlocal_blocks=...)`` builds any registered backbone
(``list_models()``): Hara's ``r3d10..r3d200``, pytorchvideo's ``i3d_r50``/``slow_r50``/
``c2d_r50``, torchvision's ``r3d_18``/``mc3_18``/``r2plus1d_18``, the FFC backbones
``ffc_c2d_r50``/``ffc_i3d_r50``/``ffc_r3d50`` (bottleneck) and ``ffc_r3d10``/``ffc_r3d18``
(basic blocks), BAT-Video-Classification's
``bat_c2d_r50``/``bat_i3d_r50`` — all one generic :class:`ResNet3D` described by data — and
SlowFast R50 (``slowfast_r50``: two pathways of :class:`ResNet3D`'s stages joined by lateral
connections, :class:`SlowFast3D`) and X3D (``x3d_xs``/``x3d_s``/``x3d_m``, :class:`X3D`).
``profile_model`` counts parameters and multiply-adds. The upstream checkpoint formats (and their key converters) are the weights
layer's (:mod:`snl_video.weights.formats`); why a checkpoint does not fit a model is said by
each family here (:mod:`.weights_fit`).
"""

from .backbone import VideoBackbone
from .architectures import HARA_DEPTHS, hara_resnet, pytorchvideo_resnet50, torchvision_video_resnet18
from .placement import (NonLocalPlacement, RegistryModel, default_positions, insert_nonlocal_blocks,
                        mmaction2_nonlocal_spec, resolve_placement)
from .profiling import ModelProfile, count_macs, profile_model
from .registry import (
    MODEL_CLASSES,
    ModelEntry,
    ModelSpec,
    build_model,
    fitting_model_names,
    guess_model_name,
    list_models,
    load_backbone_weights,
    model_entry,
    model_from_spec,
    register_model,
)
from .slowfast import SlowFast3D, SlowFastSpec
from .x3d import X3D, X3DSpec
from .resnet3d import STAGE_NAMES, ConvSpec, ResidualBlock3D, ResNet3D, ResNet3DSpec, StageSpec, StemSpec

__all__ = [
    "HARA_DEPTHS",
    "MODEL_CLASSES",
    "ModelSpec",
    "RegistryModel",
    "VideoBackbone",
    "SlowFast3D",
    "SlowFastSpec",
    "X3D",
    "X3DSpec",
    "model_from_spec",
    "STAGE_NAMES",
    "ConvSpec",
    "ModelEntry",
    "ModelProfile",
    "fitting_model_names",
    "guess_model_name",
    "NonLocalPlacement",
    "ResNet3D",
    "ResNet3DSpec",
    "ResidualBlock3D",
    "StageSpec",
    "StemSpec",
    "build_model",
    "count_macs",
    "default_positions",
    "hara_resnet",
    "insert_nonlocal_blocks",
    "list_models",
    "load_backbone_weights",
    "mmaction2_nonlocal_spec",
    "model_entry",
    "profile_model",
    "pytorchvideo_resnet50",
    "register_model",
    "resolve_placement",
    "torchvision_video_resnet18",
]
