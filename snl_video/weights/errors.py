"""Exceptions of the weights layer.

Every error a user can cause (a bad file, a wrong name, a checkpoint of another
architecture) is a :class:`WeightsError`, a project :class:`~snl_video.errors.InvalidValueError`
(so also a ``ValueError``) that the CLI prints as one line; the message names the bad value
and what to do about it.
"""

from __future__ import annotations

from ..errors import InvalidValueError


class WeightsError(InvalidValueError):
    """Base class of the user errors raised by :mod:`snl_video.weights`."""


class CheckpointReadError(WeightsError):
    """The file is missing, truncated, corrupt, or not a checkpoint at all."""


class UnsafeCheckpointError(WeightsError):
    """The file is a pickle that would import arbitrary objects (i.e. could run code)."""


class UnknownFormatError(WeightsError):
    """The checkpoint's container matches none of the known formats."""


class WeightsLoadError(WeightsError):
    """A state dict does not fit a model: missing, unexpected or mis-shaped tensors."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class WrongArchitectureError(WeightsLoadError):
    """Most of the checkpoint does not fit the model: it was made for another architecture."""


class DownloadError(WeightsError):
    """A registry file could not be fetched or did not verify."""


class HashMismatchError(DownloadError):
    """A file's sha256 differs from the one the registry records."""
