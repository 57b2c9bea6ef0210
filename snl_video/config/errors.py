"""The error every configuration problem is reported in, and the helpers that collect them.

Validation never stops at the first problem: each check adds ``(dotted_key, message)`` to
an :class:`ErrorList`, and :class:`ConfigError` reports them all at once, with a "did you
mean" suggestion (:func:`suggest`) wherever a name is close to a valid one.
"""

from __future__ import annotations

import difflib
from typing import Any, Sequence

from ..errors import InvalidValueError

__all__ = ["ConfigError", "ErrorList", "suggest"]


class ConfigError(InvalidValueError):
    """Every problem found in a configuration, as ``(dotted_key, message)`` pairs.

    A project :class:`~snl_video.errors.InvalidValueError` (so also a ``ValueError``): the CLI
    reports it as one line.
    """

    def __init__(self, errors: Sequence[tuple[str, str]], source: str | None = None,
                 command_line: Sequence[tuple[str, str]] = ()) -> None:
        """``source``: the file the errors are in; ``command_line``: those of ``errors`` that the
        command-line ``key=value`` overrides made (said as such, not as the file's)."""
        # one line per distinct problem (checks of the train and the test subset can find the same one)
        self.errors: list[tuple[str, str]] = list(dict.fromkeys(errors))
        self.source = source
        self.command_line: list[tuple[str, str]] = [e for e in command_line if e in self.errors]
        if self.command_line and len(self.command_line) == len(self.errors):
            where = " in the command-line overrides" + (f" (applied to {source})" if source else "")
        elif self.command_line:
            where = f" in {source} and the command-line overrides" if source else " (some in the command-line overrides)"
        else:
            where = f" in {source}" if source else ""
        mixed = 0 < len(self.command_line) < len(self.errors)
        lines = [f"{len(self.errors)} problem(s){where}:"]
        lines += [f"  {key or '<top level>'}: {message}"
                  + (" (from a command-line override)" if mixed and (key, message) in self.command_line else "")
                  for key, message in self.errors]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles intact (e.g. raised in a worker process), not as a message string.
        return (type(self), (self.errors, self.source, self.command_line))



class ErrorList:
    """Collects ``(key, message)`` pairs while validation continues."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        """Record one problem at the dotted ``key``."""
        self.items.append((key, message))


def suggest(name: str, valid: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``valid`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
