"""The project's own error types, at the bottom of the package so every layer can raise them.

``snl-video`` (:mod:`snl_video.cli`) prints a :class:`SnlVideoError` as one line
(``snl-video <verb>: error: <message>``, exit code 2); any other exception is a bug in
the toolkit (or in a library it calls) and keeps its traceback. So a message that a
user can act on is raised as one of these types, and only such a message:

* :class:`UserError`: something the user gave is wrong (a file, a value, a name);
  :class:`InvalidValueError` and :class:`MissingFileError` are the same and also a
  ``ValueError`` / ``FileNotFoundError``, so code that already catches those keeps working;
* the families of the layers (``WeightsError``, ``ConfigError``, ``SplitFileError``,
  ``DecodeError``, ...) derive from these, each where it is defined;
* :class:`Interrupted`: Ctrl-C, with what was kept and the command that resumes
  (a ``KeyboardInterrupt``, so ``except Exception`` never swallows it).

Internal invariants stay ``assert`` or a plain built-in exception: they are not the user's
to fix, and their traceback is what a bug report needs.
"""

from __future__ import annotations

__all__ = ["Interrupted", "InvalidValueError", "MissingFileError", "SnlVideoError", "UserError"]


class SnlVideoError(Exception):
    """Base class of every error the toolkit raises on purpose, with a message meant for a user."""


class UserError(SnlVideoError):
    """A problem with the user's input (a file, a value, a name): printed as one line, exit code 2.

    The message names the bad value and says how to fix it.
    """


class InvalidValueError(UserError, ValueError):
    """A value the user gave (an option, a config entry, a file's content) is not valid."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or directory the user named does not exist (or is not the kind expected)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was kept and the command that resumes: printed as one line, exit code 130."""
