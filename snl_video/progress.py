"""Progress that reads well whether or not somebody is watching.

On a terminal, :func:`progress` is a tqdm bar (throughput, ETA). When the stream tqdm
writes to (stderr) is not a terminal — CI, ``nohup``, ``> log 2>&1`` — a bar would leave
thousands of carriage-return fragments in the file, so :class:`PlainProgress` logs one
plain line instead, at most every ``interval`` seconds (30 by default) and once at the end::

    epoch 3/100: 120/400 steps (30%), 41.0 s, 2.93 steps/s, loss=2.314, clips_s=23.4

Both accept ``set_postfix`` the same way, so the loops do not care which one they got.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sized
from typing import Any, Iterable, Iterator, TextIO

logger = logging.getLogger(__name__)

__all__ = ["PlainProgress", "progress", "stream_is_terminal", "PLAIN_INTERVAL_S"]

#: Seconds between two plain progress lines.
PLAIN_INTERVAL_S = 30.0


def stream_is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: ``sys.stderr``, where tqdm writes) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _plural(unit: str) -> str:
    """``step`` → ``steps``, ``batch`` → ``batches``: the unit as counted in a plain line."""
    return unit + ("es" if unit.endswith(("s", "x", "ch", "sh")) else "s")


class PlainProgress:
    """An iterable wrapper that logs ``desc: n/total unit (p%), elapsed, rate, postfix`` lines
    at most every ``interval`` seconds and once when the iteration ends."""

    def __init__(self, iterable: Iterable[Any], *, total: int | None = None, desc: str = "", unit: str = "it",
                 interval: float = PLAIN_INTERVAL_S, clock: Any = time.monotonic) -> None:
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if isinstance(iterable, Sized) else None)
        self.desc = desc
        self.unit = unit
        self.interval = interval
        self.clock = clock
        self.postfix: dict[str, Any] = {}
        self.n = 0

    def set_postfix(self, **values: Any) -> None:
        self.postfix = dict(values)

    def line(self, elapsed: float) -> str:
        units = _plural(self.unit)
        if self.total:
            count = f"{self.n}/{self.total} {units} ({100.0 * self.n / self.total:.0f}%)"
        else:
            count = f"{self.n} {units}"
        rate = self.n / elapsed if elapsed > 0 else 0.0
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {count}, {elapsed:.1f} s, {rate:.3g} {units}/s{extra}"

    def __iter__(self) -> Iterator[Any]:
        start = last = self.clock()
        for item in self.iterable:
            yield item
            self.n += 1
            now = self.clock()
            if now - last >= self.interval:
                logger.info(self.line(now - start))
                last = now
        logger.info(self.line(self.clock() - start))

    def close(self) -> None:
        return None


def progress(iterable: Iterable[Any], *, enabled: bool, total: int | None = None, desc: str = "", unit: str = "it",
             leave: bool = True, stream: TextIO | None = None) -> Any:
    """A tqdm bar on a terminal, :class:`PlainProgress` lines otherwise, or a silent pass-through
    (still with ``set_postfix``) when not ``enabled``."""
    if not enabled:
        return _Silent(iterable)
    if stream_is_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit)


class _Silent:
    def __init__(self, iterable: Iterable[Any]) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable)

    def set_postfix(self, **values: Any) -> None:
        return None

    def close(self) -> None:
        return None
