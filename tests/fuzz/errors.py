"""The one property every fuzz test asserts: bad input ends as the project's one-line error."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from hypothesis import event, settings

from snl_video.cli import is_user_facing


@contextmanager
def only_project_errors() -> Iterator[None]:
    """Let the body succeed or raise an error ``snl-video`` prints as one line; anything else fails.

    ``cli.is_user_facing`` is true for :class:`snl_video.errors.SnlVideoError` (and for an
    ``OSError`` the user fixes: a full disk, a read-only folder); any other exception is a bug.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the property is about which exceptions escape
        if not is_user_facing(exc):
            raise AssertionError(f"a traceback, not a one-line error: {type(exc).__name__}: {exc}") from exc
        message = str(exc).strip()
        assert message, f"{type(exc).__name__} with an empty message"
        event(f"refused: {type(exc).__name__}")  # --hypothesis-show-statistics: how deep the examples got
    else:
        event("accepted")


def fewer_examples(share: float) -> settings:
    """The active profile's example count scaled by ``share``, for a property whose examples are
    slow (decoding, a model run): the ``ci`` profile stays within its time budget and ``long``
    still multiplies it."""
    return settings(max_examples=max(1, round(settings.default.max_examples * share)))
