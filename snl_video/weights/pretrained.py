"""One call from "a checkpoint" to "a model with a load report": the generic fine-tuning path.

``source`` is a file path, a registry name or a :class:`PretrainedWeights` entry. The file
is read safely, its format detected, its keys converted with that format's converter
(:mod:`snl_video.weights.formats`), 2-D kernels inflated where the model is 3-D, and the result loaded with
:func:`~snl_video.weights.loading.load_state_with_report` — head re-initialised on a class
mismatch, new non-local blocks left at their identity init, anything else an error.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
from torch import nn

from ..errors import MissingFileError
from .download import download_weights
from .formats import DetectedCheckpoint, convert_state, detect_format, read_checkpoint
from .inflate import InflateMethod, inflate_state_dict
from .loading import DEFAULT_NEW_MODULE_PATTERNS, LoadReport, load_state_with_report
from .registry import PretrainedWeights, get_weights, list_weights

logger = logging.getLogger(__name__)

__all__ = ["load_pretrained", "resolve_checkpoint_path", "PretrainedSource", "StateCheck"]

# A file path, a registry name or entry, or an already loaded checkpoint / state dict.
PretrainedSource = str | os.PathLike[str] | PretrainedWeights | Mapping[str, Any]
# Called with the detected checkpoint and its converted (and inflated) state before loading;
# raises to refuse the load with a message the generic report could not give.
StateCheck = Callable[[DetectedCheckpoint, dict[str, torch.Tensor]], None]


def resolve_checkpoint_path(
    source: str | os.PathLike[str] | PretrainedWeights, *, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A local file for ``source``: an existing path as is, a registry name/entry via the cache."""
    if isinstance(source, PretrainedWeights):
        return download_weights(source, cache_dir=cache_dir)
    path = Path(source)
    if path.is_file():
        return path
    if isinstance(source, str) and source in list_weights():
        return download_weights(get_weights(source), cache_dir=cache_dir)
    raise MissingFileError(
        f"pretrained weights {str(source)!r} are neither an existing file nor a registry name "
        "(`snl-video weights list` shows the names)"
    )


def load_pretrained(
    model: nn.Module,
    source: PretrainedSource,
    *,
    head_prefixes: Sequence[str] = ("fc.",),
    ignore: Sequence[str] = (),
    new_module_patterns: Sequence[str] = DEFAULT_NEW_MODULE_PATTERNS,
    inflate: Literal["auto", "never"] = "auto",
    inflate_method: InflateMethod = "average",
    allow_unsafe_pickle: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    check: StateCheck | None = None,
) -> LoadReport:
    """Load pretrained weights into ``model`` and return (and log) the load report.

    ``inflate="auto"`` inflates 4-D kernels whose model counterpart is 5-D (ImageNet
    weights into a 3-D ResNet); ``"never"`` leaves such mismatches to be reported as errors.
    Errors are those of :func:`read_checkpoint` (an unreadable file, an unknown format),
    ``check`` and :func:`load_state_with_report`.

    ``source`` may also be a checkpoint already in memory (a container dict or a state
    dict); it goes through the same detection and conversion as a file. ``check`` (see
    :data:`StateCheck`) lets the caller refuse a load before anything is copied, e.g.
    the models layer naming the architecture a checkpoint belongs to.
    """
    if isinstance(source, Mapping):
        where = "<state dict>"
        detected = detect_format(source, source=where)
    else:
        path = resolve_checkpoint_path(source, cache_dir=cache_dir)
        where = str(path)
        detected = read_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle)
    state = convert_state(detected)
    if inflate == "auto":
        state = inflate_state_dict(state, model.state_dict(), method=inflate_method)
    if check is not None:
        check(detected, state)
    return load_state_with_report(
        model,
        state,
        head_prefixes=head_prefixes,
        ignore=ignore,
        new_module_patterns=new_module_patterns,
        source=where,
        checkpoint_description=detected.describe(),
    )
