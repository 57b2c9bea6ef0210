"""Checkpoint formats as data: recognise a checkpoint's format, unwrap it, convert its keys.

Checkpoints of the common video backbones come in a handful of containers (a dict with
``state_dict`` and ``arch``, one with ``model_state``, a bare state dict, a Caffe2
``blobs`` dict of numpy arrays ...) and key vocabularies (``layer1.0.conv1``,
``blocks.1.res_blocks.0.branch2.conv_a``, ``s2.pathway0_res0.branch2.a``,
``res2_0_branch2a_w`` ...). Each upstream format is one :class:`CheckpointFormat` record in
its own module (how it is recognised, unwrapped, where its head is, how its keys map onto
snl_video's), and :data:`FORMATS` lists them **in detection order**: the first record whose
predicate accepts the container wins, so specific signatures come before the catch-alls.

:func:`detect_format` returns a :class:`DetectedCheckpoint` (the format's name, the state
dict as tensors with ``module.`` stripped, metadata, the class count read off the
classifier's shape, a rough architecture guess for error messages); :func:`convert_state`
applies that format's converter. Everything needed lives in this package, so both work in
an interpreter that imported nothing but :mod:`snl_video.weights`.

Adding a format is one module here (its ``FORMAT`` record) plus, in this file, its import,
one line in :data:`FORMATS` and its name in :data:`FormatName`. A user's own format, outside the
package, goes through :func:`register_format`: registered formats are tried before the
built-in ones.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator, Literal, Mapping, get_args

from ..errors import UnknownFormatError, WeightsError
from ..io import read_checkpoint_file
from . import (bat_video, caffe2, ffc, generic, hara2017, hara2020, mmaction2, pytorchvideo, pytorchvideo_slowfast,
               pytorchvideo_x3d, slowfast, torchvision_2d, torchvision_baseline, torchvision_video)
from .architecture import ArchitectureGuess, guess_architecture
from .base import (GENERIC_CONTAINER_KEYS, CheckpointFormat, Converter, DetectedCheckpoint, StateDict, Unwrapped,
                   strip_prefix)

logger = logging.getLogger(__name__)

__all__ = [
    "FormatName",
    "KNOWN_FORMATS",
    "FORMATS",
    "CheckpointFormat",
    "Unwrapped",
    "ArchitectureGuess",
    "DetectedCheckpoint",
    "detect_format",
    "read_checkpoint",
    "guess_architecture",
    "strip_prefix",
    "CONVERTERS",
    "convert_state",
    "register_format",
    "unregister_format",
    "registered_formats",
    "format_record",
]

#: The built-in formats in detection order. Caffe2's ``blobs`` first; then the ``model_state``
#: containers (PySlowFast's ``s1.pathway0_stem`` keys; pytorchvideo's two-pathway SlowFast and its
#: X3D by their stems, before its single-pathway ``blocks.`` catch-all); then
#: the ``state_dict`` containers whose key signatures are distinctive (FFC, BAT, mmaction2)
#: before Hara's, which are recognised by their container alone; then plain state dicts by
#: signature (torchvision video, torchvision 2-D, torchvision's MViT / Swin3D / S3D) and the generic catch-all last.
FORMATS: tuple[CheckpointFormat, ...] = (
    caffe2.FORMAT,
    slowfast.FORMAT,
    pytorchvideo_slowfast.FORMAT,
    pytorchvideo_x3d.FORMAT,
    pytorchvideo.FORMAT,
    ffc.FORMAT,
    bat_video.FORMAT,
    mmaction2.FORMAT,
    hara2020.FORMAT,
    hara2017.FORMAT,
    torchvision_video.FORMAT,
    torchvision_2d.FORMAT,
    torchvision_baseline.FORMAT,
    generic.FORMAT,
)

#: The built-in format names, for type hints (a test keeps it equal to FORMATS' names).
FormatName = Literal[
    "hara2017",  # 3D-ResNets-PyTorch (Hara et al.) 2017 release
    "hara2020",  # 3D-ResNets-PyTorch 2020 release
    "pytorchvideo",  # pytorchvideo hub .pyth (I3D / Slow / C2D R50)
    "pytorchvideo_slowfast",  # pytorchvideo hub SlowFast R50 .pyth (two pathways)
    "pytorchvideo_x3d",  # pytorchvideo hub X3D XS / S / M .pyth
    "torchvision_video",  # torchvision r3d_18 / mc3_18 / r2plus1d_18
    "mmaction2",  # mmaction2 recognizer checkpoints (backbone. / cls_head.)
    "slowfast",  # PySlowFast .pyth
    "caffe2",  # Caffe2 / Detectron .pkl (blobs dict of numpy arrays)
    "torchvision_2d",  # torchvision ImageNet ResNets (2-D, to be inflated)
    "torchvision_baseline",  # torchvision mvit_v2_s / swin3d_t / s3d (Kinetics-400)
    "ffc",  # pkumivision/FFC ImageNet FFC-ResNets (2-D, to be inflated; main.py's container)
    "bat_video",  # BA-Transform/BAT-Video-Classification Kinetics C2D / I3D (+ BAT blocks)
    "generic",  # any dict of tensors
]

#: The built-in format names (in :data:`FormatName`'s order).
KNOWN_FORMATS: tuple[str, ...] = get_args(FormatName)

# Formats added with register_format, tried before FORMATS, in registration order.
_user_formats: list[CheckpointFormat] = []


def registered_formats() -> tuple[CheckpointFormat, ...]:
    """Every format in detection order: the user's registered ones, then :data:`FORMATS`."""
    return (*_user_formats, *FORMATS)


def format_record(name: str) -> CheckpointFormat:
    """The record of format ``name``; an unknown name is an error listing the known ones."""
    for fmt in registered_formats():
        if fmt.name == name:
            return fmt
    raise WeightsError(
        f"no checkpoint format named {name!r}; known formats: {', '.join(f.name for f in registered_formats())}"
    )


def register_format(fmt: CheckpointFormat, *, overwrite: bool = False) -> None:
    """Add a user's own checkpoint format; it is tried before the built-in ones.

    Call it explicitly (e.g. at the top of your script) before reading such files: nothing
    registers on import. A built-in format's name cannot be taken; registering a name twice
    is an error unless ``overwrite``.
    """
    if not isinstance(fmt, CheckpointFormat):
        raise TypeError(f"register_format takes a CheckpointFormat record, got {type(fmt).__name__}")
    if any(f.name == fmt.name for f in FORMATS):
        raise WeightsError(f"{fmt.name!r} is a built-in checkpoint format; give yours another name")
    existing = [i for i, f in enumerate(_user_formats) if f.name == fmt.name]
    if existing and not overwrite:
        raise WeightsError(f"a checkpoint format {fmt.name!r} is already registered; pass overwrite=True to replace it")
    if existing:
        _user_formats[existing[0]] = fmt
    else:
        _user_formats.append(fmt)


def unregister_format(name: str) -> None:
    """Remove a format added with :func:`register_format` (an unknown or built-in name is an error)."""
    for i, f in enumerate(_user_formats):
        if f.name == name:
            del _user_formats[i]
            return
    raise WeightsError(f"no user-registered checkpoint format {name!r}; registered: "
                       f"{', '.join(f.name for f in _user_formats) or 'none'}")


class _ConverterView(Mapping[str, Converter]):
    """Read-only ``format name → key converter``, derived from the registered records."""

    def __getitem__(self, name: str) -> Converter:
        for fmt in registered_formats():
            if fmt.name == name:
                return fmt.convert
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (fmt.name for fmt in registered_formats())

    def __len__(self) -> int:
        return len(registered_formats())

    def __repr__(self) -> str:
        return f"CONVERTERS({', '.join(self)})"


#: ``format name → converter`` of every registered format (a read-only view of the records).
CONVERTERS: Mapping[str, Converter] = _ConverterView()


def detect_format(obj: Any, *, source: str = "<in memory>") -> DetectedCheckpoint:
    """Recognise what :func:`~snl_video.weights.io.read_checkpoint_file` returned and unwrap it.

    The formats are tried in :func:`registered_formats` order; the first whose predicate
    accepts ``obj`` unwraps it. Raises :class:`UnknownFormatError` listing the container's
    top-level keys and the known formats when nothing matches.
    """
    if not isinstance(obj, Mapping) or not obj:
        raise UnknownFormatError(
            f"{source}: expected a dict (a checkpoint container or a state dict), found "
            f"{type(obj).__name__}{' (empty)' if isinstance(obj, Mapping) else ''}; known formats: "
            f"{', '.join(f.name for f in registered_formats())}"
        )
    top = tuple(str(k) for k in obj.keys())
    fmt = next((f for f in registered_formats() if f.recognise(obj)), None)
    if fmt is None:
        raise UnknownFormatError(
            f"{source}: unrecognised checkpoint container with top-level keys {list(top)[:20]!r}"
            f"{' ...' if len(top) > 20 else ''}; known formats: {', '.join(f.name for f in registered_formats())} "
            f"(a generic state dict must map names to tensors, at the top level or under one of "
            f"{', '.join(repr(k) for k in GENERIC_CONTAINER_KEYS)})"
        )
    state, metadata = fmt.unwrap(obj, source)
    heads = fmt.heads_in(state)
    weight_head = next((h for h in heads if h.endswith("weight") or h.endswith("_w")), None)
    head = state.get(weight_head) if weight_head else None
    return DetectedCheckpoint(
        format=fmt.name,
        state_dict=state,
        metadata=metadata,
        num_classes=int(head.shape[0]) if head is not None and head.dim() >= 1 else None,
        head_keys=heads,
        architecture=guess_architecture(state),
        container_keys=top,
        source=source,
    )


def read_checkpoint(path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False) -> DetectedCheckpoint:
    """Safely read a checkpoint file and detect its format (see :func:`detect_format`)."""
    obj = read_checkpoint_file(path, allow_unsafe_pickle=allow_unsafe_pickle)
    detected = detect_format(obj, source=str(path))
    logger.info(
        "%s: %s, %d tensors, %s classes",
        path,
        detected.describe(),
        detected.num_tensors,
        detected.num_classes if detected.num_classes is not None else "unknown",
    )
    return detected


def convert_state(detected: DetectedCheckpoint) -> StateDict:
    """Map ``detected``'s keys onto snl_video's model names with its format's converter.

    A pure function of the unwrapped state: keys the converter does not know pass through,
    so a later load report names them.
    """
    try:
        fmt = format_record(detected.format)
    except WeightsError as exc:
        raise WeightsError(f"cannot convert {detected.source}: {exc}") from None
    return fmt.convert(dict(detected.state_dict))
