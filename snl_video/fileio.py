"""Atomic file writes, shared by every layer that writes results.

A file is written under a temporary name in its destination folder, flushed to disk and
moved into place with :func:`os.replace`, which is atomic on POSIX: a reader (or a later
run) sees either the previous file or the complete new one, never a half-written file,
and a crash or kill mid-write leaves no partial output under the final name.

Faults are the user's to fix, so they are one clear error (:class:`OutputWriteError`, printed
as one line by ``snl-video``) naming the file, the cause and what was kept: a full disk
(``ENOSPC``) or quota, a read-only or permission-denied folder. :func:`ensure_writable_dir`
checks an output folder at the start of a command, before any heavy work.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

from .errors import UserError

__all__ = ["OutputWriteError", "append_line", "atomic_write", "atomic_write_text", "atomic_torch_save", "write_error",
           "current_umask", "ensure_writable_dir", "os_error_in", "remove_stale_temporaries", "open_for_writing"]

#: errno values that are the user's to fix (space, quota, permissions, a read-only file system).
USER_FIXABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG})


class OutputWriteError(UserError, OSError):
    """A result could not be written: the disk is full, or the folder is not writable.

    Also an :class:`OSError` carrying the original ``errno``, so code that catches ``OSError``
    keeps working.
    """

    def __init__(self, message: str, *, errno_value: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_value

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):  # across processes (a prepare worker) with its errno
        return (type(self), (str(self),), {"errno": self.errno})


def os_error_in(exc: BaseException) -> OSError | None:
    """The user-fixable :class:`OSError` (full disk, permissions, read-only) that caused ``exc``,
    looking through the chain of causes (``torch.save`` reports a failed write as a
    ``RuntimeError`` raised while handling it); None when there is none."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in USER_FIXABLE_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def _fix(err: OSError) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free space on that disk (or raise the quota), or choose another output folder"
    return "choose another output folder, or make this one writable"


def write_error(path: str | os.PathLike[str], err: OSError, *, kept: str | None = None) -> OutputWriteError:
    """The one-line :class:`OutputWriteError` for ``err`` while writing ``path`` (``kept``: what
    stayed intact, e.g. ``"the previous file is kept"``)."""
    reason = err.strerror or os.strerror(err.errno or 0) or str(err)
    name = errno.errorcode.get(err.errno or -1, "")
    kept_text = f"; {kept}" if kept else ""
    return OutputWriteError(f"cannot write {path}: {reason}{f' ({name})' if name else ''}{kept_text}: {_fix(err)}",
                            errno_value=err.errno)


def ensure_writable_dir(folder: str | os.PathLike[str]) -> list[Path]:
    """Create ``folder`` when needed and check that a file can be created in it (a temporary
    file, removed at once), so an unwritable output folder fails before any heavy work.

    Returns the folders this call created, outermost first (a caller that fails to start
    may remove them again).

    Raises:
        OutputWriteError: the folder cannot be created or written.
    """
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if folder.exists() and not folder.is_dir():
        raise OutputWriteError(f"output folder {folder} is a file, not a folder: choose another output folder",
                               errno_value=errno.ENOTDIR)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".snl_video_write_check.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno == errno.ENOTDIR:
            raise OutputWriteError(f"output folder {folder}: a file is in the way ({exc}): choose another output "
                                   f"folder", errno_value=exc.errno) from None
        raise OutputWriteError(f"output folder {folder} is not writable: {exc.strerror or exc}: {_fix(exc)}",
                               errno_value=exc.errno) from None
    return list(reversed(missing))


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Remove the temporary files :func:`atomic_write` left in ``folder`` (not below it) when its
    process was killed mid-write (``.<name>.<random>.tmp``); returns how many.

    Only safe while no other process writes into ``folder``: call it holding the folder's
    :func:`snl_video.locking.output_lock`.
    """
    removed = 0
    try:
        candidates = list(Path(folder).glob(".*.tmp"))
    except OSError:
        return 0
    for path in candidates:
        if path.is_file():
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def open_for_writing(fd: int) -> BinaryIO:
    """The stream :func:`atomic_write` writes through (a seam for fault-injection tests)."""
    return os.fdopen(fd, "wb")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux's
    ``/proc/self/status``); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write a file through ``write(stream)`` to a temporary name, then ``os.replace`` it.

    Whatever ``write`` returns (``stream.write``'s byte count, say) is ignored.

    Raises:
        OutputWriteError: the disk filled up or the folder is not writable (whatever layer
            reported it, e.g. ``torch.save``'s ``RuntimeError``); the temporary file is removed
            and a previous file under ``path`` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno not in USER_FIXABLE_ERRNOS:
            raise
        raise write_error(path, exc, kept=_kept(path)) from exc
    try:
        # mkstemp creates the file 0600 whatever the umask; give it the mode a plain open()
        # would (0666 minus the umask), so a run's outputs are as readable as its other files
        os.fchmod(fd, 0o666 & ~current_umask())
        with open_for_writing(fd) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = os_error_in(exc) if isinstance(exc, Exception) else None
        if cause is None or isinstance(exc, OutputWriteError):
            raise
        raise write_error(path, cause, kept=_kept(path)) from exc
    return path


def _kept(path: Path) -> str:
    return "the previous file is kept" if path.exists() else "no partial file was left"


def append_line(path: str | os.PathLike[str], line: str, *, encoding: str = "utf-8") -> None:
    """Append ``line`` (a newline added) to a text file and flush it to disk, so a log or a
    results table holds every finished row even when the process dies right after.

    Raises:
        OutputWriteError: the disk filled up or the file is not writable; the rows already in
            the file stay.
    """
    try:
        with open(path, "a", encoding=encoding) as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if exc.errno not in USER_FIXABLE_ERRNOS:
            raise
        raise write_error(path, exc, kept="the rows written before are kept") from exc


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write` of a text."""
    return atomic_write(path, lambda f: f.write(text.encode(encoding)))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))
