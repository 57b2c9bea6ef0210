"""Option checks shared by the graph-kind presets, the block and the filters.

Each raises a ``ValueError`` naming the option, the valid values and the value received,
so a bad YAML value or keyword reads as what to change. :func:`keyword_defaults` reads a
preset's (or factory's) options from its signature: the signature is the one list.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence
from ..errors import InvalidValueError

__all__ = ["check_choice", "check_positive_int", "check_subsample", "keyword_defaults"]


def check_subsample(value: Any) -> tuple[int, int, int]:
    """``value`` as a ``(t, h, w)`` max-pool window of positive ints."""
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise InvalidValueError(f"subsample must be a list of 3 positive ints (t, h, w), e.g. [1, 2, 2], got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


def check_positive_int(name: str, value: Any) -> None:
    """Reject anything but an int ``>= 1`` (``bool`` included)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidValueError(f"{name} must be a positive int, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Reject a value outside ``choices``."""
    if value not in choices:
        raise InvalidValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def keyword_defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """The keyword-only parameters of ``function`` with their defaults (``inter_channels`` aside)."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "inter_channels"
    }
