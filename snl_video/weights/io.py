"""Reading checkpoint files without running code, and writing files atomically.

A ``.pth`` / ``.pyth`` / ``.pkl`` file is a pickle, and unpickling can call any function
the file names (``os.system`` included). So :func:`read_checkpoint_file` never unpickles with
an open allowlist unless the caller opts in:

* zip-format torch files (``torch.save`` since 1.6) and legacy torch files go through
  ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers;
* plain pickles (Caffe2 / Detectron ``.pkl`` files of numpy ``blobs``, written by
  Python 2) go through :class:`RestrictedUnpickler`, which resolves only the handful of
  globals such files need (numpy array and dtype reconstruction, ``OrderedDict``) and
  refuses everything else *before* it is called.

* ``.safetensors`` files (timm / Hugging Face Hub weights: a flat ``name → tensor`` file
  with a JSON header) go through ``safetensors.torch.load_file``, which holds no code at all;
  the result is the flat state dict, which format detection then recognises like any other.

``allow_unsafe_pickle=True`` (CLI: ``--allow-unsafe-pickle``) lifts the restriction; it is
meant only for files whose origin you trust, e.g. an mmengine checkpoint carrying
arbitrary Python objects in its metadata.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

from ..fileio import atomic_torch_save, atomic_write
from .errors import CheckpointReadError, UnsafeCheckpointError

logger = logging.getLogger(__name__)

__all__ = ["read_checkpoint_file", "is_safetensors", "load_checkpoint", "RestrictedUnpickler", "restricted_pickle_load", "atomic_write", "atomic_torch_save"]

# torch.save's legacy (non-zip) format starts with this pickled integer.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_MAGIC = b"PK\x03\x04"
_OPT_IN_HINT = (
    "If (and only if) you trust where this file comes from, pass allow_unsafe_pickle=True "
    "(CLI: --allow-unsafe-pickle); otherwise re-save its tensors with torch.save(state_dict) "
    "from a trusted environment."
)


def _latin1_only_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` as protocol-2 pickles of ``bytes`` use it.

    Python 3 pickles ``bytes`` at protocol 2 as ``_codecs.encode(text, 'latin1')``;
    anything else routed through this global is refused.
    """
    if not isinstance(obj, str) or encoding.replace("-", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(obj).__name__}, {encoding!r})")
    return obj.encode("latin1", errors)


def _numpy_multiarray(name: str) -> Callable[[], Any]:
    def resolve() -> Any:
        # numpy 2 moved numpy.core to numpy._core; Python 2 / numpy 1 pickles use the old name.
        from numpy._core import multiarray

        return getattr(multiarray, name)

    return resolve


# (module, name) -> zero-argument resolver. Only what a pickled dict of numpy arrays needs.
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_multiarray("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_multiarray("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): _numpy_multiarray("scalar"),
    ("numpy._core.multiarray", "scalar"): _numpy_multiarray("scalar"),
    ("collections", "OrderedDict"): lambda: __import__("collections").OrderedDict,
    ("_codecs", "encode"): lambda: _latin1_only_encode,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("__builtin__", "set"): lambda: set,
    ("__builtin__", "frozenset"): lambda: frozenset,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy-array and container globals.

    ``find_class`` is the single place a pickle can reach a callable; refusing unknown
    names there means a malicious file fails before anything it names is invoked.
    """

    def find_class(self, module: str, name: str) -> Any:
        resolver = _ALLOWED_GLOBALS.get((module, name))
        if resolver is None:
            raise UnsafeCheckpointError(
                f"refused to load global {module}.{name}: only numpy arrays, dtypes and plain "
                "containers are allowed in a restricted (Caffe2-style) pickle"
            )
        return resolver()

    def persistent_load(self, pid: Any) -> Any:  # pragma: no cover - defensive
        raise UnsafeCheckpointError(f"refused persistent id {pid!r} in a restricted pickle")


def restricted_pickle_load(stream: BinaryIO, *, encoding: str = "latin1") -> Any:
    """Unpickle one object from ``stream`` with :class:`RestrictedUnpickler`.

    ``encoding="latin1"`` is what Python 2 pickles of numpy arrays need (their raw
    buffers are ``str`` objects).
    """
    return RestrictedUnpickler(stream, encoding=encoding).load()


def _describe(path: Path) -> str:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(16)
    return f"{size} bytes, starting with {head!r}"


def read_checkpoint_file(path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False) -> Any:
    """Read a checkpoint file onto the CPU without executing code from it.

    Returns whatever the file holds (usually a dict); :func:`snl_video.weights.formats.detect_format`
    turns that into a state dict. Raises :class:`UnsafeCheckpointError` for a pickle that
    needs arbitrary globals (unless ``allow_unsafe_pickle``), and :class:`CheckpointReadError`
    for a missing, empty, truncated or corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointReadError(f"checkpoint file {str(path)!r} does not exist (or is not a file)")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointReadError(f"checkpoint file {str(path)!r} is empty (0 bytes): an interrupted download or copy?")
    with path.open("rb") as f:
        head = f.read(9)
    if is_safetensors(path, head):
        return _load_safetensors(path)
    head = head[:4]
    if head == _ZIP_MAGIC:
        return _load_torch(path, allow_unsafe_pickle=allow_unsafe_pickle)
    # Not a zip: a bare pickle: either torch's legacy format (a pickled magic number first) or a plain
    # pickled object such as a Caffe2 blobs dict. Read the first object restrictedly.
    try:
        with path.open("rb") as f:
            first = restricted_pickle_load(f)
    except UnsafeCheckpointError as exc:
        if not allow_unsafe_pickle:
            raise UnsafeCheckpointError(
                f"{str(path)!r} is a pickle that would import arbitrary objects and could run code "
                f"({exc}). {_OPT_IN_HINT}"
            ) from None
        logger.warning("loading %s with an unrestricted unpickler (allow_unsafe_pickle=True)", path)
        return _load_unsafe_plain_pickle(path)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CheckpointReadError(
            f"{str(path)!r} is not a readable checkpoint (truncated, corrupt, or not a checkpoint at all): "
            f"it is not a torch zip archive and unpickling failed with {type(exc).__name__}: {exc} "
            f"({_describe(path)})"
        ) from None
    if isinstance(first, int) and first == _TORCH_LEGACY_MAGIC:
        return _load_torch(path, allow_unsafe_pickle=allow_unsafe_pickle)
    logger.debug("%s read as a plain (restricted) pickle of %s", path, type(first).__name__)
    return first


def is_safetensors(path: str | os.PathLike[str], head: bytes | None = None) -> bool:
    """Whether ``path`` is a safetensors file: named ``*.safetensors``, or starting as one does
    (an 8-byte little-endian header length, then the JSON header's ``{``)."""
    if str(path).endswith(".safetensors"):
        return True
    if head is None:
        with open(path, "rb") as f:
            head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 100_000_000


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointReadError(f"{str(path)!r} is not a readable safetensors file (truncated or corrupt): "
                                  f"{str(exc).splitlines()[0] if str(exc) else exc!r} ({_describe(path)})") from None


def load_checkpoint(path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False) -> Any:
    """Deprecated name of :func:`read_checkpoint_file` (kept for one release).

    Renamed because :mod:`snl_video.engine.checkpoint` has a loader of training checkpoints
    too; this one reads any checkpoint file safely and returns what it holds.
    """
    warnings.warn(
        "snl_video.weights.load_checkpoint is deprecated and will be removed in the next release; "
        "use snl_video.weights.read_checkpoint_file (same arguments)",
        DeprecationWarning,
        stacklevel=2,
    )
    return read_checkpoint_file(path, allow_unsafe_pickle=allow_unsafe_pickle)


def _load_unsafe_plain_pickle(path: Path) -> Any:
    with path.open("rb") as f:
        try:
            return pickle.load(f, encoding="latin1")  # noqa: S301 - explicit user opt-in
        except (pickle.UnpicklingError, EOFError) as exc:
            raise CheckpointReadError(f"{str(path)!r} is truncated or corrupt: {exc}") from None


def _load_torch(path: Path, *, allow_unsafe_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_globals(path)
        if not unsafe:
            raise CheckpointReadError(
                f"{str(path)!r} is corrupt: torch.load failed with {type(exc).__name__}: "
                f"{str(exc).splitlines()[-1] if str(exc).strip() else exc!r} ({_describe(path)})"
            ) from None
        if not allow_unsafe_pickle:
            raise UnsafeCheckpointError(
                f"{str(path)!r} refers to Python objects beyond tensors and plain containers "
                f"({', '.join(unsafe)}); loading it could run arbitrary code. {_OPT_IN_HINT}"
            ) from None
        logger.warning(
            "loading %s with weights_only=False (allow_unsafe_pickle=True); it imports %s", path, ", ".join(unsafe)
        )
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise CheckpointReadError(
            f"{str(path)!r} is truncated or corrupt: torch.load failed with {type(exc).__name__}: "
            f"{first_line} ({_describe(path)})"
        ) from None


def _unsafe_globals(path: Path) -> list[str]:
    """The globals a torch file needs beyond torch's weights-only allowlist ([] if unknown)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - the file may be too broken to list; the caller reports it
        return []
