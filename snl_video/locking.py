"""One writer per output folder: a lock file in the folder that names its holder.

``train``, ``eval``, ``prepare``, ``features`` and ``study`` write many files into one folder
over minutes or hours; two of them writing into the same folder at once interleave logs and
overwrite each other's results, and both exit 0. :func:`output_lock` makes the second one
fail at once, naming the first::

    with output_lock(out_dir, "train"):
        ...  # write into out_dir

The lock is a file ``.snl_video.lock`` created with ``O_CREAT | O_EXCL`` (so exactly one
process creates it) holding JSON: the holder's host, PID, the PID's start time (to tell a
reused PID from the holder), the time it was taken, the verb and the command line. While it
holds the lock the process also keeps an ``flock`` on that file, which the kernel drops the
moment the process dies, however it dies (SIGKILL, power loss of a container).

A lock is *stale* when its holder is on this host and is gone (no process holds the
``flock``, and the PID is gone or now belongs to another process): it is taken over with a
warning saying so. A lock written on another host is never taken over (this host cannot tell
whether that run is alive): the error says which file to delete once that run is gone.

The lock is released (the file removed) when the ``with`` block ends, on an exception and on
Ctrl-C; a folder that the lock created and that is still empty then is removed too, so a run
that fails to start leaves no folder behind. Under ``torchrun`` only rank 0 (the ``RANK``
environment variable) takes the lock: the other ranks of the same job write nothing there on
their own. The lock is re-entrant within a process: a command that holds it may call an
engine function that takes it again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .fileio import ensure_writable_dir

try:  # POSIX: the kernel drops an flock when its holder dies
    import fcntl
except ImportError:  # pragma: no cover - Windows: the PID check alone decides staleness
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "LockHolder", "OutputLockedError", "output_lock", "read_lock"]

#: The lock file's name inside the locked folder.
LOCK_NAME = ".snl_video.lock"

# Folders this process holds a lock on (resolved path -> depth), for re-entrancy.
_held: dict[Path, int] = {}


class OutputLockedError(UserError, RuntimeError):
    """Another process writes into the output folder (or left a lock this host cannot judge).

    Also a ``RuntimeError``, as the ``PrepareBusyError`` it replaces was.
    """


@dataclass(frozen=True)
class LockHolder:
    """What a lock file says about the process that took it."""

    host: str
    pid: int
    started: str
    verb: str
    command: str
    #: The PID's start time in clock ticks since boot (Linux), to recognise a reused PID.
    pid_start: int | None = None

    def describe(self) -> str:
        return f"`snl-video {self.verb}` (PID {self.pid} on host {self.host}, since {self.started})"


def _pid_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def read_lock(folder: str | os.PathLike[str]) -> LockHolder | None:
    """The holder recorded in ``folder``'s lock file; None when there is none or it is unreadable."""
    try:
        return _parse(Path(folder, LOCK_NAME).read_bytes())
    except OSError:
        return None


def _parse(data: bytes) -> LockHolder | None:
    try:
        d = json.loads(data.decode("utf-8"))
        return LockHolder(host=str(d["host"]), pid=int(d["pid"]), started=str(d["started"]), verb=str(d["verb"]),
                          command=str(d.get("command", "")),
                          pid_start=int(d["pid_start"]) if d.get("pid_start") is not None else None)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def _record(verb: str) -> bytes:
    pid = os.getpid()
    return json.dumps({
        "host": socket.gethostname(), "pid": pid, "pid_start": _pid_start(pid),
        "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "verb": verb,
        "command": " ".join(["snl-video", *sys.argv[1:]]) if sys.argv else "",
    }, indent=1).encode("utf-8") + b"\n"


def _write_record(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


def _flock(fd: int, *, block: bool) -> bool:
    """Take the ``flock`` of ``fd``; False when another process holds it (only without ``block``)."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _refusal(folder: Path, holder: LockHolder | None, *, other_host: bool = False) -> OutputLockedError:
    lock = folder / LOCK_NAME
    if holder is None:
        return OutputLockedError(
            f"{folder} is locked by another writer ({lock} exists but cannot be read): if no other snl-video "
            f"command writes into this folder, delete {lock}; else wait for it or choose another output folder")
    if other_host:
        return OutputLockedError(
            f"{folder} is in use by {holder.describe()}; a lock taken on another host is never taken over "
            f"automatically: once that run has finished or died, delete {lock}, or choose another output folder")
    return OutputLockedError(
        f"{folder} is in use by {holder.describe()}: wait for it to finish, or choose another output folder")


def _take_over_or_refuse(folder: Path, path: Path, verb: str) -> int | None:
    """For an existing lock file: an fd holding the taken-over lock when it is stale; None when
    the file went away meanwhile (try again); raises :class:`OutputLockedError` when it is held."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    keep = False
    try:
        holder = None
        # A creator writes its record right after creating the file: give it a moment.
        for _ in range(20):
            holder = _parse(path.read_bytes()) if path.exists() else None
            if holder is not None or not path.exists():
                break
            time.sleep(0.05)
        if not path.exists():
            return None
        if holder is None:
            raise _refusal(folder, None)
        if holder.host != socket.gethostname():
            raise _refusal(folder, holder, other_host=True)
        if not _flock(fd, block=False):
            raise _refusal(folder, holder)  # alive: it holds the flock
        if not _same_file(fd, path):
            return None  # released and re-created meanwhile: try again
        alive = _pid_alive(holder.pid)
        reused = alive and holder.pid_start is not None and _pid_start(holder.pid) not in (None, holder.pid_start)
        if alive and not reused and fcntl is not None and holder.pid != os.getpid():
            # the PID runs, has not been reused, yet holds no flock: a file system without flock;
            # never guess that a live process is gone
            raise _refusal(folder, holder)
        if alive and not reused and fcntl is None:  # pragma: no cover
            raise _refusal(folder, holder)
        _write_record(fd, _record(verb))
        why = "that PID now belongs to another process" if reused else "that process is gone"
        logger.warning("%s: took over the stale lock of %s: %s", folder, holder.describe(), why)
        keep = True
        return fd
    finally:
        if not keep:
            os.close(fd)


def _acquire(folder: Path, verb: str) -> int:
    path = folder / LOCK_NAME
    for _ in range(10):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o644)
        except FileExistsError:
            taken = _take_over_or_refuse(folder, path, verb)
            if taken is not None:
                return taken
            continue
        try:
            _flock(fd, block=True)  # another process may hold it for a moment, judging the empty file
            _write_record(fd, _record(verb))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)
            raise
        return fd
    raise OutputLockedError(f"{folder}: the lock {path} keeps changing hands; is another command starting "
                            f"into this folder in a loop? Wait for it, or choose another output folder")


def _release(fd: int, path: Path) -> None:
    try:
        if _same_file(fd, path):
            os.unlink(path)
    except OSError as exc:  # the folder went away or became read-only: nothing left to release
        logger.debug("could not remove %s: %s", path, exc)
    finally:
        os.close(fd)


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], verb: str) -> Iterator[Path]:
    """Hold ``folder``'s lock for the ``with`` block (see the module doc); yields the folder.

    Creates the folder when needed and checks that it is writable first, so an unwritable
    output folder is one clear error before any heavy work. Under ``torchrun`` only rank 0
    locks; the other ranks only enter the block.

    Args:
        folder: the output folder.
        verb: what writes into it (``train``, ``eval``, ...), named in a refusal.

    Raises:
        OutputLockedError: another live process holds the lock, or a lock from another host
            (or an unreadable one) is in the way; the message names the holder and the fix.
        snl_video.fileio.OutputWriteError: the folder cannot be created or written.
    """
    folder = Path(folder)
    if int(os.environ.get("RANK", "0") or 0) != 0:
        yield folder
        return
    key = folder.resolve()
    if key in _held:  # re-entrant within one process
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    created = ensure_writable_dir(folder)
    try:
        fd = _acquire(folder, verb)
    except BaseException:
        _remove_empty(created)
        raise
    _held[key] = 1
    owner = os.getpid()
    try:
        yield folder
    finally:
        if os.getpid() == owner:  # a forked child (a loader worker) leaves the parent's lock alone
            del _held[key]
            _release(fd, folder / LOCK_NAME)
            _remove_empty(created)


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders in ``created`` (deepest first) that are empty."""
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        try:
            path.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                logger.debug("could not remove %s: %s", path, exc)
            return
