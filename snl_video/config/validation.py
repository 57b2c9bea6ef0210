"""Validation that needs the blocks themselves: the non-local kind and its options.

Kinds and options are read from the registry (:func:`~snl_video.nonlocal_blocks.list_nonlocal_kinds`,
:func:`~snl_video.nonlocal_blocks.nonlocal_options`); value checks belong to each block, so a
small probe block is built on the CPU and its error reported under the config key.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ErrorList, suggest

__all__ = ["PROBE_CHANNELS", "check_nonlocal_kind_and_options"]

#: Width of the probe block (about 10 ms to build).
PROBE_CHANNELS = 256


def check_nonlocal_kind_and_options(kind: str, options: Mapping[str, Any], errors: ErrorList, prefix: str) -> None:
    """Add to ``errors`` an unknown kind, unknown or mistyped options, or the block's own complaint."""
    import torch

    from ..nonlocal_blocks import build_nonlocal, list_nonlocal_kinds, nonlocal_options

    kinds = list_nonlocal_kinds()
    if kind not in kinds:
        errors.add(f"{prefix}.kind", f"unknown non-local kind {kind!r}; valid kinds: {', '.join(kinds)}{suggest(kind, kinds)}")
        return
    defaults = nonlocal_options(kind)
    clean: dict[str, Any] = {}
    bad = False
    for name, value in options.items():
        key = f"{prefix}.options.{name}"
        if name not in defaults:
            valid = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
            errors.add(key, f"unknown option for non-local kind {kind!r}{suggest(name, list(defaults))}; valid options: {valid}")
            bad = True
            continue
        expected = type(defaults[name])
        if expected is float and type(value) is int:
            value = float(value)
        # An option whose default is None (e.g. srb's groups, spatial_size) is checked by the block.
        if defaults[name] is not None and type(value) is not expected:
            errors.add(key, f"expected {expected.__name__} (default {defaults[name]!r}), got {type(value).__name__} {value!r}")
            bad = True
            continue
        clean[name] = value
    if bad:
        return
    # Value checks belong to the block itself: build a small one (256 channels, ~10 ms) and
    # report its error. Checks that depend on the real width (e.g. CGNL groups dividing the
    # channels) are the models layer's. fork_rng: validating must not move the global RNG.
    try:
        with torch.random.fork_rng(devices=[]):
            build_nonlocal(kind, PROBE_CHANNELS, **clean)
    except (ValueError, TypeError) as exc:
        errors.add(f"{prefix}.options", str(exc))
