"""Pretrained weights: read checkpoints safely, recognise their format, inflate 2-D weights,
load them into a model with a report, and the registry of known Kinetics checkpoints.

This half is independent of :mod:`snl_video.models`; the per-format key converters that
map foreign names onto snl_video's models register themselves through
:func:`snl_video.weights.formats.register_converter`.
"""

from .download import default_cache_dir, download_weights
from .errors import (
    CheckpointReadError,
    DownloadError,
    HashMismatchError,
    UnknownFormatError,
    UnsafeCheckpointError,
    WeightsError,
    WeightsLoadError,
    WrongArchitectureError,
)
from .formats import (
    CONVERTERS,
    KNOWN_FORMATS,
    ArchitectureGuess,
    DetectedCheckpoint,
    FormatName,
    convert_state,
    detect_format,
    guess_architecture,
    read_checkpoint,
    register_converter,
)
from .inflate import inflate_conv_weight, inflate_state_dict
from .io import load_checkpoint
from .loading import LoadReport, load_state_with_report
from .pretrained import load_pretrained
from .registry import (
    ClipSpec,
    InputSpec,
    EvalTransformParams,
    PretrainedWeights,
    eval_transform_params,
    get_weights,
    list_weights,
)

__all__ = [
    "ArchitectureGuess",
    "CONVERTERS",
    "CheckpointReadError",
    "ClipSpec",
    "DetectedCheckpoint",
    "DownloadError",
    "EvalTransformParams",
    "FormatName",
    "HashMismatchError",
    "InputSpec",
    "KNOWN_FORMATS",
    "LoadReport",
    "PretrainedWeights",
    "UnknownFormatError",
    "UnsafeCheckpointError",
    "WeightsError",
    "WeightsLoadError",
    "WrongArchitectureError",
    "convert_state",
    "default_cache_dir",
    "detect_format",
    "download_weights",
    "eval_transform_params",
    "get_weights",
    "guess_architecture",
    "inflate_conv_weight",
    "inflate_state_dict",
    "list_weights",
    "load_checkpoint",
    "load_pretrained",
    "load_state_with_report",
    "read_checkpoint",
    "register_converter",
]
