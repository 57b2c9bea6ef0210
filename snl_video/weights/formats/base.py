"""The record that describes one upstream checkpoint format, and the helpers the records share.

A :class:`CheckpointFormat` is data: the format's name, a predicate that recognises its
container, a function that unwraps the container into a flat state dict of tensors plus
metadata, the classifier (head) keys, and the pure ``state -> state`` key converter onto
snl_video's model names. :mod:`snl_video.weights.formats` keeps them in one ordered tuple
and tries them in that order.

The helpers below (``strip_prefix``, ``tensor_state``, ``plain_state`` ...) are what most
records' predicates and unwrappers are made of; they are public so a format module — ours
or a user's — can build on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import torch

from ..errors import UnknownFormatError
from .architecture import ArchitectureGuess

__all__ = [
    "StateDict",
    "Converter",
    "Unwrapped",
    "CheckpointFormat",
    "DetectedCheckpoint",
    "GENERIC_CONTAINER_KEYS",
    "strip_prefix",
    "is_tensor_dict",
    "tensor_state",
    "container_metadata",
    "keys_without_module",
    "state_dict_or_bare",
    "plain_state",
    "unwrap_plain_state",
    "put_unique",
]

StateDict = dict[str, torch.Tensor]

Converter = Callable[[StateDict], StateDict]


class Unwrapped(NamedTuple):
    """What a format's ``unwrap`` returns: the flat state dict of tensors and the container's metadata."""

    state: StateDict
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CheckpointFormat:
    """One upstream checkpoint format: how to recognise, unwrap and convert it.

    ``recognise(container)`` gets the non-empty mapping the file held and answers whether
    it is this format; it must not raise (look, don't unwrap). ``unwrap(container, source)``
    returns :class:`Unwrapped`; it raises :class:`~snl_video.weights.errors.UnknownFormatError`
    naming ``source`` when the container is recognised but malformed (e.g. non-tensor
    values). ``head_keys`` are the classifier's keys in the unwrapped state (the weight
    first; its first dimension is the class count), or a function of the state for formats
    whose head moves (pytorchvideo's ``blocks.<last>.proj``). ``convert`` maps the
    unwrapped keys onto snl_video's model names; keys it does not know pass through
    unchanged, so the load report names them instead of the converter dropping them.
    """

    name: str
    description: str
    recognise: Callable[[Mapping[str, Any]], bool]
    unwrap: Callable[[Mapping[str, Any], str], Unwrapped]
    head_keys: tuple[str, ...] | Callable[[Mapping[str, torch.Tensor]], tuple[str, ...]]
    convert: Converter

    def heads_in(self, state: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
        """This format's head keys that ``state`` actually holds, in the record's order."""
        heads = self.head_keys(state) if callable(self.head_keys) else self.head_keys
        return tuple(h for h in heads if h in state)


_BUFFER_SUFFIXES = (
    "running_mean",
    "running_var",
    "num_batches_tracked",
    "_bn_rm",
    "_bn_riv",
)


@dataclass(frozen=True)
class DetectedCheckpoint:
    """A checkpoint recognised and unwrapped into a flat state dict of tensors.

    ``format`` is the name of the :class:`CheckpointFormat` that recognised it (one of
    :data:`~snl_video.weights.formats.KNOWN_FORMATS`, or a format a user registered).
    """

    format: str
    state_dict: StateDict
    metadata: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    head_keys: tuple[str, ...] = ()
    architecture: ArchitectureGuess = field(default_factory=ArchitectureGuess)
    container_keys: tuple[str, ...] = ()
    source: str = "<in memory>"

    @property
    def num_tensors(self) -> int:
        return len(self.state_dict)

    @property
    def num_parameters(self) -> int:
        """Elements of all floating-point tensors except BN running statistics and counters."""
        return sum(
            t.numel()
            for k, t in self.state_dict.items()
            if t.is_floating_point() and not k.endswith(_BUFFER_SUFFIXES)
        )

    def describe(self) -> str:
        return f"{self.format} checkpoint of {self.architecture.describe()}"


# Containers under which a generic state dict may sit, in order of preference.
GENERIC_CONTAINER_KEYS: tuple[str, ...] = (
    "state_dict", "model_state", "model", "state", "model_state_dict", "net", "network",
)


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Drop ``prefix`` from every key if *all* keys carry it (e.g. ``module.`` of DataParallel)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def is_tensor_dict(obj: Any) -> bool:
    """Whether ``obj`` is a non-empty mapping of string names to tensors (a bare state dict)."""
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def tensor_state(obj: Mapping[str, Any], *, where: str) -> StateDict:
    """``obj`` as a state dict with ``module.`` stripped; a non-tensor value is an error naming ``where``."""
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UnknownFormatError(
            f"{where} should map names to tensors, but {len(bad)} entries are not tensors "
            f"(e.g. {bad[:3]!r} of type {type(obj[bad[0]]).__name__})"
        )
    return strip_prefix(obj, "module.")


def container_metadata(container: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The scalar entries ``keys`` of ``container`` (other values as ``<TypeName>``); {} for a non-mapping."""
    if not isinstance(container, Mapping):
        return {}
    out: dict[str, Any] = {}
    for k in keys:
        if k in container:
            v = container[k]
            out[k] = v if isinstance(v, (int, float, str, bool, type(None))) else f"<{type(v).__name__}>"
    return out


def keys_without_module(state: Mapping[Any, Any]) -> list[str]:
    """The keys of ``state`` as strings, each without a leading ``module.``."""
    return [str(k).removeprefix("module.") for k in state]


def state_dict_or_bare(container: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool] | None:
    """The state of a ``{'state_dict': ...}`` container (``(state, True)``) or of a bare state
    dict of tensors (``(container, False)``); None for anything else.

    The layout upstream ``main.py`` scripts write (Hara, FFC, BAT, mmaction2) or a plain
    ``torch.save(model.state_dict())``.
    """
    inner = container.get("state_dict")
    if isinstance(inner, Mapping) and inner:
        return inner, True
    if is_tensor_dict(container):
        return container, False
    return None


def plain_state(container: Mapping[str, Any]) -> tuple[Mapping[str, torch.Tensor], str | None] | None:
    """A state dict of tensors at the top level (key ``None``) or under the first of
    :data:`GENERIC_CONTAINER_KEYS` that holds one; None if there is none."""
    if is_tensor_dict(container):
        return container, None
    for key in GENERIC_CONTAINER_KEYS:
        if is_tensor_dict(container.get(key)):
            return container[key], key
    return None


def unwrap_plain_state(container: Mapping[str, Any], source: str) -> Unwrapped:
    """Unwrap what :func:`plain_state` finds: ``module.`` stripped, ``epoch``/``arch`` and the
    container key kept as metadata when the state sat under one."""
    found = plain_state(container)
    if found is None:
        raise UnknownFormatError(f"{source}: no state dict of tensors at the top level or under "
                                 f"{', '.join(repr(k) for k in GENERIC_CONTAINER_KEYS)}")
    state, key = found
    if key is None:
        return Unwrapped(strip_prefix(state, "module."), {})
    meta = container_metadata(container, ("epoch", "arch"))
    meta["container_key"] = key
    return Unwrapped(strip_prefix(state, "module."), meta)


def rename_keys(state: Mapping[str, Any], key_map: Callable[[str], str]) -> dict[str, Any]:
    """``state`` with each key renamed by ``key_map`` (values untouched) for a converter. A key
    ``key_map`` refuses (``KeyError``) passes through unchanged, so the load report names it;
    two keys mapping to one name is a ``KeyError``."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        try:
            new = key_map(key)
        except KeyError:
            new = key
        put_unique(out, new, value, key)
    return out


def put_unique(out: StateDict, key: str, value: torch.Tensor, original: str) -> None:
    """``out[key] = value`` for a converter; two checkpoint keys mapping to one is a ``KeyError``."""
    if key in out:
        raise KeyError(f"two checkpoint keys map to {key!r} (the second is {original!r})")
    out[key] = value
