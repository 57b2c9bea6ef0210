"""Pretrained weights: read checkpoints safely, recognise their format, inflate 2-D weights,
load them into a model with a report, and the registry of known Kinetics checkpoints.

This layer never imports :mod:`snl_video.models`: every upstream checkpoint format —
how it is recognised, unwrapped and its keys mapped onto snl_video's model names — is a
record in :mod:`snl_video.weights.formats`, so detection and conversion work in an
interpreter that imported only this package. A user's own format is added explicitly with
:func:`register_format`.
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
    FORMATS,
    KNOWN_FORMATS,
    ArchitectureGuess,
    CheckpointFormat,
    DetectedCheckpoint,
    FormatName,
    convert_state,
    detect_format,
    guess_architecture,
    read_checkpoint,
    register_format,
    unregister_format,
)
from .inflate import inflate_conv_weight, inflate_state_dict
from .io import load_checkpoint, read_checkpoint_file
from .loading import LoadReport, load_state_with_report
from .pretrained import load_pretrained
from .registry import (
    ClipSpec,
    InputSpec,
    EvalTransformParams,
    PretrainedWeights,
    entry_for_file,
    eval_transform_params,
    get_weights,
    list_weights,
)

__all__ = [
    "ArchitectureGuess",
    "CONVERTERS",
    "CheckpointFormat",
    "CheckpointReadError",
    "ClipSpec",
    "DetectedCheckpoint",
    "DownloadError",
    "EvalTransformParams",
    "FORMATS",
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
    "entry_for_file",
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
    "read_checkpoint_file",
    "register_format",
    "unregister_format",
]
