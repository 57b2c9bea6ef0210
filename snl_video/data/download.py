"""``snl-video download ucf101|hmdb51``: fetch the official archives and split files, resumably, and extract them.

Each archive is downloaded to ``ROOT/<file>.part`` with HTTP ``Range`` resume (the
downloader of :mod:`snl_video.weights.download`), checked against its known size and
checksum, and only then renamed to ``ROOT/<file>``. Extraction writes into a temporary
folder ``ROOT/.extract-<file>/`` and renames its top-level entries into place once
everything is out, then leaves a marker ``ROOT/.done/<file>``; a run killed at any point
resumes where it stopped and never leaves a half-extracted tree under a final name.

Layout after ``download ucf101``: ``ROOT/UCF-101/<Class>/*.avi`` and
``ROOT/ucfTrainTestlist/`` (the arguments of ``prepare ucf101``). After ``download
hmdb51``: ``ROOT/hmdb51_org/<class>/*.avi`` (the archive holds one RAR per class, each
extracted in turn) and ``ROOT/testTrainMulti_7030_splits/`` (for ``prepare hmdb51``).

RAR extraction uses **libarchive** through the ``libarchive-c`` package (PyPI; maintained;
libarchive ≥ 3.6 reads RAR 4 and RAR 5). It needs the system library (``libarchive13`` on
Debian/Ubuntu, ``libarchive`` on Homebrew/conda); without it the error says what to
install. Entries are written by this module, one by one: absolute paths and ``..`` are
refused (no writes outside ``ROOT``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, Sequence

from tqdm import tqdm

from ..fileio import atomic_write_text
from ..errors import InvalidValueError, SnlVideoError

logger = logging.getLogger(__name__)

__all__ = ["ArchiveFile", "DATASET_ARCHIVES", "DatasetDownloadError", "download_dataset", "extract_archive"]

DownloadName = Literal["ucf101", "hmdb51"]
INSTALL_HINT = ("RAR extraction needs libarchive: `pip install libarchive-c` and the system library "
                "(`apt-get install libarchive13` on Debian/Ubuntu, `brew install libarchive` on macOS, "
                "`conda install libarchive`)")


class DatasetDownloadError(SnlVideoError, RuntimeError):
    """A download or an extraction failed; the message says how to resume or what to fix."""


@dataclass(frozen=True)
class ArchiveFile:
    """One official file: where it is, how to check it, where its contents go.

    ``extract_to`` is relative to ROOT; ``nested`` means the archive holds one archive per
    class, each extracted into ``nested`` (HMDB-51). ``size`` / ``md5`` / ``sha256`` are
    checked when known (``None``: the file is only reported unverified).
    """

    url: str
    file_name: str
    extract_to: str = "."
    nested: str | None = None
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None


DATASET_ARCHIVES: dict[str, tuple[ArchiveFile, ...]] = {
    "ucf101": (
        ArchiveFile("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar", "UCF101.rar"),
        ArchiveFile("https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
                    "UCF101TrainTestSplits-RecognitionTask.zip"),
    ),
    "hmdb51": (
        ArchiveFile("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar", "hmdb51_org.rar",
                    extract_to="hmdb51_rars", nested="hmdb51_org"),
        # md5 as published with torchvision's HMDB51 dataset
        ArchiveFile("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",
                    "test_train_splits.rar", md5="15e67781e70dcfbdce2d7dbb9b3344b5"),
    ),
}


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, entry: ArchiveFile) -> None:
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise DatasetDownloadError(f"{path}: {size} bytes, expected {entry.size}")
    checked = False
    for algorithm in ("sha256", "md5"):
        expected = getattr(entry, algorithm)
        if expected is None:
            continue
        actual = _digest(path, algorithm)
        if actual != expected.lower():
            raise DatasetDownloadError(f"{path}: {algorithm} {actual}, expected {expected}")
        checked = True
    if not checked and entry.size is None:
        logger.warning("%s: no size or checksum is published for this file; it was not verified", path.name)


def _fetch_file(entry: ArchiveFile, url: str, root: Path, *, progress: bool) -> Path:
    """``ROOT/<file_name>``, downloaded (resuming a ``.part``) and verified, renamed into place."""
    from ..weights.download import DownloadError, fetch_url

    target = root / entry.file_name
    if target.is_file():
        try:
            _verify(target, entry)
        except DatasetDownloadError as exc:
            raise DatasetDownloadError(f"{exc}: it is not the official file; delete it and run again") from None
        logger.info("%s: already downloaded", target)
        return target
    part = target.with_name(target.name + ".part")
    if not (entry.size is not None and part.is_file() and part.stat().st_size == entry.size):
        try:
            fetch_url(url, part, progress=progress, hint="")
        except DownloadError as exc:
            # a partial file is named only when there is one (an offline machine never creates it)
            message = str(exc).rstrip(". ")
            if part.is_file():
                message += f"; the partial file {part} ({part.stat().st_size} bytes) is kept"
                message += "" if "run it again" in message else "; run the same command again to resume"
            else:
                message += "; no partial file was written; run the same command again"
            raise DatasetDownloadError(message) from None
    try:
        _verify(part, entry)
    except DatasetDownloadError as exc:
        part.unlink(missing_ok=True)
        raise DatasetDownloadError(f"{exc} (downloaded from {url}; the partial file was deleted, run again to "
                                   "download it afresh)") from None
    os.replace(part, target)
    logger.info("%s: saved", target)
    return target


def _safe_relative(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise DatasetDownloadError(f"{archive}: entry {name!r} would be written outside the target folder; refused")
    return path


def extract_archive(archive: str | Path, dest: str | Path, *, progress: bool = True) -> list[Path]:
    """Extract ``archive`` (RAR, ZIP, tar, ... : whatever libarchive reads) into ``dest``.

    Atomic per archive: everything goes to ``dest/.extract-<name>/`` first; only when the
    last entry is written are the top-level entries renamed into ``dest`` (replacing what
    an interrupted earlier run of the same archive renamed). Returns the top-level paths.
    """
    try:
        import libarchive
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError/AttributeError when the .so is missing
        raise DatasetDownloadError(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})") from None
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".extract-{archive.name}"
    complete = staging / ".complete"
    if staging.exists() and not complete.exists():
        shutil.rmtree(staging)  # a killed extraction: start it again
    if not staging.exists():
        staging.mkdir()
        try:
            with libarchive.file_reader(str(archive)) as entries:
                for entry in tqdm(entries, desc=f"extract {archive.name}", unit="file", disable=not progress):
                    rel = _safe_relative(entry.pathname, archive)
                    target = staging.joinpath(*rel.parts)
                    if entry.isdir:
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    if not entry.isfile:
                        logger.warning("%s: skipping %s (not a regular file)", archive, entry.pathname)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open(target, "wb") as f:
                        for block in entry.get_blocks():
                            f.write(block)
        except libarchive.ArchiveError as exc:
            raise DatasetDownloadError(f"{archive}: cannot extract ({exc}); if the file is damaged delete it and "
                                       "download again") from None
        complete.write_text("")
    tops = []
    for item in sorted(staging.iterdir()):
        if item == complete:
            continue
        final = dest / item.name
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(item, final)
        tops.append(final)
    shutil.rmtree(staging)
    return tops


def download_dataset(
    name: DownloadName,
    root: str | Path,
    *,
    base_url: str | None = None,
    files: Sequence[ArchiveFile] | None = None,
    extract: bool = True,
    progress: bool = True,
) -> Path:
    """Download and extract dataset ``name`` into ``root``; returns ``root``.

    ``base_url`` replaces the directory part of every URL (a mirror, or a local server in
    tests); ``files`` replaces the catalogue entries. Re-running resumes: finished
    downloads and extractions (``ROOT/.done/<file>``) are skipped.
    """
    if name not in DATASET_ARCHIVES:
        raise InvalidValueError(f"unknown dataset {name!r}; downloadable: {', '.join(sorted(DATASET_ARCHIVES))}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    done = root / ".done"
    for entry in files if files is not None else DATASET_ARCHIVES[name]:
        url = f"{base_url.rstrip('/')}/{entry.file_name}" if base_url else entry.url
        marker = done / entry.file_name
        if marker.is_file():
            logger.info("%s: already downloaded and extracted", entry.file_name)
            continue
        archive = _fetch_file(entry, url, root, progress=progress)
        if not extract:
            continue
        extract_archive(archive, root / entry.extract_to, progress=progress)
        if entry.nested is not None:
            inner = sorted((root / entry.extract_to).rglob("*.rar"))
            if not inner:
                raise DatasetDownloadError(f"{archive} holds no per-class .rar files; is it the official archive?")
            for class_archive in tqdm(inner, desc="class archives", unit="archive", disable=not progress):
                extract_archive(class_archive, root / entry.nested, progress=False)
        atomic_write_text(marker, url + "\n")
    logger.info("%s is in %s", name, root)
    return root
