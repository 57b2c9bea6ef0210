"""The kind registry: every name :func:`build_nonlocal` accepts, and how each is built.

Two families share one namespace. **Graph** kinds (:data:`.presets.GRAPH_PRESETS`) are
presets over :class:`~.block.NonLocalBlock` (affinity × graph filter). **Transform** kinds
(SRB, BAT, …) are residual blocks that are not an affinity × filter, each its own
``nn.Module`` in its own file; a factory is ``factory(in_channels, *, inter_channels=None,
**options) -> nn.Module`` whose keyword-only arguments are the kind's options. Both are
listed in this module's tables; :func:`register_block_kind` adds a transform kind from
outside the package. ``snl-video nonlocal`` prints every kind with its options.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Literal

from torch import nn

from .bat import build_bat
from .block import NonLocalBlock
from .checks import check_choice, check_positive_int, keyword_defaults
from .presets import BLOCK_LEVEL_OPTIONS, GRAPH_PRESETS
from .srb import build_srb
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "KindFamily",
    "build_nonlocal",
    "describe_nonlocal",
    "list_nonlocal_kinds",
    "nonlocal_options",
    "register_block_kind",
]

KindFamily = Literal["all", "graph", "transform"]

#: Transform-domain kind name → factory.
_MODULE_KINDS: dict[str, Callable[..., nn.Module]] = {
    "srb": build_srb,
    "bat": build_bat,
}


def register_block_kind(name: str, factory: Callable[..., nn.Module]) -> None:
    """Register a transform-domain block kind (a duplicate name is an error)."""
    if name in GRAPH_PRESETS or name in _MODULE_KINDS:
        raise ValueError(f"non-local kind {name!r} is already registered")
    _MODULE_KINDS[name] = factory


def list_nonlocal_kinds(family: KindFamily = "all") -> list[str]:
    """Names accepted by :func:`build_nonlocal`: ``graph`` kinds (a :class:`NonLocalBlock`,
    affinity × graph filter), ``transform`` kinds (SRB, BAT) or ``all``."""
    check_choice("family", family, ("all", "graph", "transform"))
    graph = list(GRAPH_PRESETS) if family in ("all", "graph") else []
    return graph + (list(_MODULE_KINDS) if family in ("all", "transform") else [])


def nonlocal_options(kind: str) -> dict[str, Any]:
    """The options of ``kind`` with their defaults (``inter_channels`` aside)."""
    return keyword_defaults(_preset(kind))


def describe_nonlocal(kind: str) -> str:
    """One paragraph on what ``kind`` computes."""
    return inspect.getdoc(_preset(kind)) or kind


def _preset(kind: str) -> Callable[..., Any]:
    if isinstance(kind, str) and kind in _MODULE_KINDS:
        return _MODULE_KINDS[kind]
    if not isinstance(kind, str) or kind not in GRAPH_PRESETS:
        raise InvalidValueError(f"unknown non-local kind {kind!r}; valid kinds: {', '.join(list_nonlocal_kinds())}")
    return GRAPH_PRESETS[kind]


def _check_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The kind's options with defaults; an unknown option is an error listing the valid ones."""
    valid = nonlocal_options(kind)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InvalidValueError(
            f"unknown option(s) {unknown} for non-local kind {kind!r}; valid options: "
            + ", ".join(f"{k}={v!r}" for k, v in valid.items())
        )
    return valid


def build_nonlocal(
    kind: str, in_channels: int, *, inter_channels: int | None = None, **options: Any
) -> nn.Module:
    """Build a non-local block of ``kind`` for ``in_channels``-channel feature maps.

    Args:
        kind: one of :func:`list_nonlocal_kinds` (``snl-video nonlocal`` lists them with
            their options).
        in_channels: channels ``C`` of the input (and output).
        inter_channels: embedding channels ``C_s``; default ``in_channels // 2``.
        **options: per-kind options, see :func:`nonlocal_options`; e.g. ``order`` and
            ``impl`` for ``snl``. An unknown option is an error listing the valid ones.

    Returns:
        A :class:`NonLocalBlock` that starts as the identity, or for a transform-domain
        kind (``list_nonlocal_kinds("transform")``) that kind's module.
    """
    preset = _preset(kind)
    check_positive_int("in_channels", in_channels)
    if kind in _MODULE_KINDS:
        _check_options(kind, options)
        return preset(in_channels, inter_channels=inter_channels, **options)
    if inter_channels is None:
        inter_channels = max(in_channels // 2, 1)
    check_positive_int("inter_channels", inter_channels)
    resolved = {**_check_options(kind, options), **options}
    check_choice("activation", resolved["activation"], ("relu", "none"))
    spec = preset(in_channels, inter_channels, **options)
    block_kwargs = {k: resolved[k] for k in BLOCK_LEVEL_OPTIONS}
    block = NonLocalBlock(in_channels, inter_channels, kind=kind, options=options, **block_kwargs, **spec)
    logger.debug("built %r", block)
    return block
