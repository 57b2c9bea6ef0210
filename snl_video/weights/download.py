"""Fetch registry checkpoints into a local cache: progress bar, resume, hash check, atomic rename.

The cache directory is ``$SNL_VIDEO_CACHE`` if set, else ``~/.cache/snl_video/weights``.

**Offline path.** A machine without internet (or a file without a direct URL, such as the
Google-Drive-only 3D-ResNets-PyTorch checkpoints) uses the cache as is: copy the file into
the cache directory under the entry's ``file_name`` (``snl-video weights list`` shows it).
:func:`download_weights` then finds it, checks its sha256 where one is known, and never
touches the network.

A download goes to ``<file_name>.part``; an interrupted one is resumed with an HTTP
``Range`` request; the finished file is hashed and only then renamed into place, so the
cache never holds a partial or unverified file under the final name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import DownloadError, HashMismatchError
from .registry import PretrainedWeights, get_weights

logger = logging.getLogger(__name__)

__all__ = ["default_cache_dir", "download_weights", "fetch_url", "sha256_of", "verify_sha256"]

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def default_cache_dir() -> Path:
    """``$SNL_VIDEO_CACHE``, else ``~/.cache/snl_video/weights``."""
    env = os.environ.get("SNL_VIDEO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "snl_video" / "weights"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str | None) -> str:
    """Hash ``path`` and compare with ``expected`` (a full digest or a leading prefix).

    Returns the actual digest; raises :class:`HashMismatchError` naming both on mismatch.
    ``expected=None`` only logs a warning that the file is unverified.
    """
    actual = sha256_of(path)
    if expected is None:
        logger.warning("%s: no sha256 is published for this file; it was not verified (sha256 %s)", path, actual)
    elif not actual.startswith(expected.lower()):
        kind = "prefix" if len(expected) < 64 else "digest"
        raise HashMismatchError(f"{path}: sha256 mismatch: expected {kind} {expected}, got {actual}")
    return actual


def _offline_hint(entry: PretrainedWeights, target: Path) -> str:
    return (
        f"Offline path: obtain {entry.file_name!r} yourself and copy it to {str(target)!r} "
        f"(the cache directory is $SNL_VIDEO_CACHE or ~/.cache/snl_video/weights)."
    )


def download_weights(
    name_or_entry: str | PretrainedWeights,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Return the local path of a registry checkpoint, downloading it if the cache lacks it.

    A file already in the cache is hash-checked and used without any network access.
    Raises :class:`DownloadError` when the entry has no URL (the message explains the
    offline path) or the server fails, and :class:`HashMismatchError` when the hash does
    not match (a downloaded file is then deleted; a file you placed yourself is left alone).
    """
    entry = get_weights(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = directory / entry.file_name
    if target.is_file():
        logger.info("%s: found in the cache at %s", entry.name, target)
        try:
            verify_sha256(target, entry.sha256)
        except HashMismatchError as exc:
            raise HashMismatchError(
                f"{exc}. The cached file is not the published {entry.name!r}; delete it and download again."
            ) from None
        return target
    if entry.url is None:
        raise DownloadError(f"{entry.name!r} has no direct download URL. {entry.notes} {_offline_hint(entry, target)}")
    directory.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    fetch_url(entry.url, part, progress=progress, hint=_offline_hint(entry, target))
    try:
        verify_sha256(part, entry.sha256)
    except HashMismatchError as exc:
        part.unlink(missing_ok=True)
        raise HashMismatchError(f"{exc} (downloaded from {entry.url}; the partial file was deleted)") from None
    os.replace(part, target)
    logger.info("%s: saved to %s", entry.name, target)
    return target


def _then(hint: str) -> str:
    """`` <hint>`` after a sentence of an error message, or nothing when there is no hint."""
    return f" {hint}" if hint else ""


def fetch_url(url: str, part: Path, *, progress: bool, hint: str) -> None:
    """Download ``url`` into the partial file ``part``, resuming from its current size when the server allows.

    Shared by the weights cache and the dataset archives (:mod:`snl_video.data.download`):
    the caller verifies and renames ``part``. ``hint`` ends every :class:`DownloadError`
    message (what the user can do, e.g. the offline path). An incomplete transfer is an
    error and leaves ``part`` in place, so running again resumes it.
    """
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "snl_video"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)  # noqa: S310 - https/http registry urls
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # The partial file is not a prefix the server can continue: start over.
            logger.warning("%s: server refused to resume at byte %d; restarting the download", url, offset)
            part.unlink()
            return fetch_url(url, part, progress=progress, hint=hint)
        raise DownloadError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}.{_then(hint)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"downloading {url} failed: {exc}.{_then(hint)}") from None
    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206:
            mode = "ab"
            logger.info("resuming %s at byte %d", url, offset)
        else:
            if offset:
                logger.warning("%s: server ignored the Range request; downloading from the start", url)
            mode, offset = "wb", 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, mode) as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[: -len(".part")], disable=not progress
        ) as bar:
            try:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
            except OSError as exc:
                raise DownloadError(
                    f"downloading {url} was interrupted after {f.tell()} bytes ({exc}); run it again to resume.{_then(hint)}"
                ) from None
            f.flush()
            os.fsync(f.fileno())
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"downloading {url} stopped at {size} of {total} bytes; run it again to resume.{_then(hint)}")
