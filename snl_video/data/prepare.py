"""``prepare``: verify the listed videos of a dataset source and write them in the prepared format.

The job, in order:

1. read the requested splits into the common manifest (validated by the source, see
   :mod:`snl_video.data.sources`: UCF-101, HMDB-51, a folder, list files);
2. check that every listed video exists; missing ones are an error that lists them, unless
   ``allow_missing`` (then they are left out and listed in the report);
3. decode each remaining video with PyAV (the frame-exact reference), resize to the short
   side, and write the frames (packed JPEGs, ``.jpegs``, by default; raw ``.npy`` with
   ``storage="npy"``) + record
   atomically (:mod:`snl_video.data.prepared`), in
   ``workers`` processes with a progress bar. A bad video never stops the run: it gets a
   status and a reason;
4. write ``index.csv`` (usable videos with their subsets) and ``report.json`` (every found
   video with its status), atomically.

Statuses: ``ok``; ``short`` (fewer frames than one clip: kept, and the samplers loop-pad
it; skipped instead with ``short_videos="skip"``, status ``too_short``); ``truncated``
(decoding stopped early, or fewer frames than the header declares: the frames before the
damage are kept, minus the last decoded one, which comes from the cut packet and holds
concealment garbage); ``empty_file``, ``not_a_video``, ``undecodable``,
``too_short``, ``error`` (anything unexpected): skipped.

Re-running skips every video whose record exists and whose source size and mtime are
unchanged, and writes the same files (nothing in them depends on time or worker order).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence, get_args

import numpy as np
import pandas as pd
import torch

from ..deprecation import renamed_attribute, renamed_keywords
from ..errors import InvalidValueError, MissingFileError
from ..fileio import OutputWriteError, os_error_in, write_error
from ..locking import OutputLockedError, output_lock
from ..progress import progress as _progress
from .decoding import DecodeError, iter_frames, probe_video
from .prepared import (
    FORMAT_VERSION,
    INDEX_COLUMNS,
    KEPT_STATUSES,
    STORAGES,
    atomic_write_json,
    frames_path,
    record_path,
    save_frames,
    save_jpeg_frames,
    upgrade_record,
    upgrade_settings,
)
from .hmdb51 import OFFICIAL_PER_CLASS
from .sources import SPLIT_OPTIONS_ATTR, check_manifest, files_digest, hmdb51_manifest, ucf101_manifest

logger = logging.getLogger(__name__)

__all__ = ["DATASET_FILE", "MissingVideosError", "PrepareBusyError", "PrepareSettings", "prepare_hmdb51", "prepare_manifest", "prepare_ucf101",
           "prepare_one", "read_dataset_name", "resized_shape"]

#: Names the source of a prepared directory (absent in directories written before sources existed: UCF-101).
DATASET_FILE = "dataset.json"

ShortVideos = Literal["loop", "skip"]
Storage = Literal["npy", "jpeg"]


class MissingVideosError(MissingFileError):
    """Listed videos are absent from the video tree."""


#: Another command (a prepare, or any writer) holds the output folder: the one lock of
#: :func:`snl_video.locking.output_lock`, kept under its old name for callers that catch it.
PrepareBusyError = OutputLockedError


@dataclass(frozen=True)
class PrepareSettings:
    """How ``prepare`` writes a folder (stored in its ``settings.json``). ``num_frames``, the
    clip length, only decides which videos count as short; ``clip_len``, its old name, is
    accepted (and read) for one release."""

    short_side: int = 128  # 0 keeps the source size
    num_frames: int = 16
    short_videos: ShortVideos = "loop"
    #: "jpeg" (default): each video's frames as JPEGs in one ``.jpegs`` file, ~8x smaller than
    #: raw frames (the rawframes convention of mmaction2 / SlowFast); "npy": raw uint8 frames,
    #: memory-mapped, the fastest to read (~2x) at ~8x the disk.
    storage: Storage = "jpeg"
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise InvalidValueError(f"storage must be one of {sorted(STORAGES)}, got {self.storage!r}")
        if self.storage == "jpeg" and not 1 <= self.jpeg_quality <= 100:
            raise InvalidValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    clip_len = renamed_attribute("clip_len", "num_frames")

    def as_dict(self) -> dict:
        d = {"format_version": FORMAT_VERSION, "short_side": self.short_side, "num_frames": self.num_frames,
             "short_videos": self.short_videos, "storage": self.storage}
        if self.storage == "jpeg":
            d["jpeg_quality"] = self.jpeg_quality
        return d


# PrepareSettings(clip_len=...) is its old spelling: accepted for one release, with a warning
setattr(PrepareSettings, "__init__", renamed_keywords(clip_len="num_frames")(PrepareSettings.__init__))


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(H, W) with the short side ``short_side`` and the aspect ratio kept (240x320 -> 128x171)."""
    if short_side <= 0:
        return height, width
    if height <= width:
        return short_side, int(round(width * short_side / height))
    return int(round(height * short_side / width)), short_side


def _resize_chunk(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    return _resize_frames(torch.from_numpy(np.stack(frames)), size).numpy()


def _resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(frames.shape[1:3]) == size:
        return frames
    # bilinear with antialias on uint8, the same kernel torchvision's resize uses
    video = frames.permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(video, size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized.permute(0, 2, 3, 1).contiguous()


class ResizeShortSide:
    """Frames ``uint8 (T, H, W, 3)`` resized as ``prepare`` stores them (short side
    ``short_side``, aspect kept, the same kernel): what a video file goes through before the
    evaluation transform when the model was trained and evaluated on prepared frames, so
    ``predict`` on the file scores what ``eval`` scores on the prepared copy. Picklable
    (DataLoader workers)."""

    def __init__(self, short_side: int) -> None:
        if short_side < 1:
            raise InvalidValueError(f"short_side must be >= 1, got {short_side}")
        self.short_side = int(short_side)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        height, width = int(frames.shape[1]), int(frames.shape[2])
        return _resize_frames(frames, resized_shape(height, width, self.short_side))

    def __repr__(self) -> str:
        return f"ResizeShortSide({self.short_side})"


def read_prepared_settings(root: str | Path) -> dict | None:
    """The settings a prepared directory was written with (``settings.json``: short side, clip
    length, storage...), or None when ``root`` holds none (not prepared, or not reachable)."""
    path = Path(root) / "settings.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return upgrade_settings(data) if isinstance(data, dict) else None


def prepare_one(source: str, video: str, out_dir: str, settings: PrepareSettings) -> dict:
    """Prepare one video and write its record; returns the record. Never raises for a bad video."""
    out = Path(out_dir)
    src = Path(source)
    stat = src.stat()
    record: dict = {"path": video, "source_bytes": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
                    "status": None, "reason": "", "video_frames": 0, "height": 0, "width": 0,
                    "source_height": 0, "source_width": 0, "fps": 0.0, "declared_frames": 0}
    try:
        record.update(_decode_and_store(src, video, out, settings, record))
    except OutputWriteError:  # a full disk / unwritable --out is not a bad video: it stops the run
        raise
    except Exception as exc:  # noqa: BLE001 - a bad video must never stop the run
        record.update(status="error", reason=f"{type(exc).__name__}: {exc}")
        logger.debug("unexpected failure on %s:\n%s", video, traceback.format_exc())
    rec_file = record_path(out, video)
    rec_file.parent.mkdir(parents=True, exist_ok=True)
    if record["status"] not in KEPT_STATUSES:
        stale = frames_path(out, video, settings.storage)
        if stale.exists():
            stale.unlink()
    atomic_write_json(rec_file, record)
    return record


def _decode_and_store(src: Path, video: str, out: Path, settings: PrepareSettings, record: dict) -> dict:
    if record["source_bytes"] == 0:
        return {"status": "empty_file", "reason": "file has zero bytes"}
    try:
        info = probe_video(src)
    except DecodeError as exc:
        return {"status": "not_a_video", "reason": str(exc)}
    update: dict = {"source_height": info.height, "source_width": info.width, "fps": round(info.fps, 6),
                    "declared_frames": info.declared_frames}
    if info.width <= 0 or info.height <= 0:
        return {**update, "status": "undecodable", "reason": "video stream has no frame size"}
    size = resized_shape(info.height, info.width, settings.short_side)
    chunks: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    error = ""
    try:
        for frame in iter_frames(src):
            if frame.shape[:2] != (info.height, info.width):
                raise DecodeError(f"frame size changed mid-stream to {frame.shape[1]}x{frame.shape[0]}")
            pending.append(frame)
            if len(pending) == 32:
                chunks.append(_resize_chunk(pending, size))
                pending = []
    except DecodeError as exc:
        error = str(exc)
    if pending:
        chunks.append(_resize_chunk(pending, size))
    frames = np.concatenate(chunks) if chunks else np.zeros((0, *size, 3), np.uint8)
    decoded = len(frames)
    status, reason = "ok", ""
    if error or (info.declared_frames and decoded < info.declared_frames):
        # the last frame of a cut file comes from a cut packet: the decoder conceals the
        # missing bytes with garbage (measured), so it is dropped with the damage
        status = "truncated"
        why = f"decoding failed ({error})" if error else f"the header declares {info.declared_frames}"
        frames = frames[:-1]
        reason = f"decoded {decoded} frames, {why}; kept the first {len(frames)}"
    num = len(frames)
    if num == 0:
        return {**update, "status": "undecodable", "reason": error or "no frame could be decoded"}
    if num < settings.num_frames:
        if settings.short_videos == "skip":
            return {**update, "status": "too_short", "reason": f"{num} frames < clip length {settings.num_frames}"}
        if status == "ok":
            status, reason = "short", f"{num} frames < clip length {settings.num_frames}: loop-padded when sampled"
    dest = frames_path(out, video, settings.storage)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if settings.storage == "jpeg":
        save_jpeg_frames(dest, frames, quality=settings.jpeg_quality)
    else:
        save_frames(dest, frames)
    return {**update, "status": status, "reason": reason, "video_frames": int(num),
            "height": int(frames.shape[1]), "width": int(frames.shape[2])}


def _worker_init() -> None:
    # Ctrl-C is the parent's to handle (it reports what was kept); workers just stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    logging.getLogger("libav").setLevel(logging.ERROR)


def _run_job(job: tuple[str, str, str, PrepareSettings]) -> dict:
    return prepare_one(*job)


def _is_done(out: Path, video: str, source: Path, storage: str) -> dict | None:
    """The record of ``video`` if it is finished and its source is unchanged, else None."""
    rec_file = record_path(out, video)
    if not rec_file.is_file():
        return None
    try:
        record = json.loads(rec_file.read_text())
    except (OSError, ValueError):
        return None
    stat = source.stat()
    if record.get("source_bytes") != stat.st_size or record.get("source_mtime_ns") != stat.st_mtime_ns:
        return None
    if record.get("status") in KEPT_STATUSES and not frames_path(out, video, storage).is_file():
        return None
    upgraded = upgrade_record(record)
    if upgraded != record:  # written by format 1 (the frame count was num_frames): rewrite it as format 2
        atomic_write_json(rec_file, upgraded)
    return upgraded


def _remove_stale_temporaries(out: Path) -> int:
    count = 0
    for tmp in out.rglob("*.tmp-*"):
        if tmp.is_file():
            tmp.unlink()
            count += 1
    return count


def prepare_ucf101(
    videos_dir: str | Path,
    splits_dir: str | Path,
    out_dir: str | Path,
    *,
    splits: Sequence[int] = (1, 2, 3),
    workers: int = 1,
    allow_missing: bool = False,
    settings: PrepareSettings = PrepareSettings(),
    progress: bool = True,
) -> dict:
    """Run the whole job (see the module doc); returns the report that is also written to ``OUT/report.json``."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise MissingFileError(f"--videos {videos_dir} is not a directory (expected the UCF-101/ folder of class folders)")
    _check_job(workers, settings)
    manifest = ucf101_manifest(splits_dir, list(splits))
    manifest.attrs[SPLIT_OPTIONS_ATTR] = {"--splits (content)": files_digest([splits_dir])}
    return prepare_manifest(manifest, videos_dir, out_dir, dataset="ucf101", workers=workers,
                            allow_missing=allow_missing, settings=settings, progress=progress)


def prepare_hmdb51(
    videos_dir: str | Path,
    splits_dir: str | Path,
    out_dir: str | Path,
    *,
    splits: Sequence[int] = (1, 2, 3),
    per_class: tuple[int, int] | None = OFFICIAL_PER_CLASS,
    workers: int = 1,
    allow_missing: bool = False,
    settings: PrepareSettings = PrepareSettings(),
    progress: bool = True,
) -> dict:
    """HMDB-51 as :func:`prepare_ucf101`: the split files are read and the 70/30 counts
    (``per_class``) checked before any video is looked at (:mod:`snl_video.data.hmdb51`)."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise MissingFileError(f"--videos {videos_dir} is not a directory (expected the hmdb51_org/ folder of "
                                "class folders, per-class RARs extracted)")
    _check_job(workers, settings)
    manifest = hmdb51_manifest(splits_dir, list(splits), per_class=per_class)
    manifest.attrs[SPLIT_OPTIONS_ATTR] = {"--splits (content)": files_digest([splits_dir]),
                                          "--per-class": list(per_class) if per_class is not None else None}
    return prepare_manifest(manifest, videos_dir, out_dir, dataset="hmdb51", workers=workers,
                            allow_missing=allow_missing, settings=settings, progress=progress)


#: Key of ``settings.json`` holding, per split, what decided its subsets (see :func:`split_record`).
SPLITS_KEY = "splits"


def split_record(manifest: pd.DataFrame) -> dict[str, dict]:
    """Per split of ``manifest``: the options that decided which video lands in which subset
    (``manifest.attrs["split_options"]``: test/val fraction, seed, group rule, the split or
    list files' content hash) and ``assignment``, the sha256 of its sorted
    ``path, label, subset`` rows — the result itself, whatever option produced it."""
    import hashlib

    options = dict(manifest.attrs.get(SPLIT_OPTIONS_ATTR, {}))
    record: dict[str, dict] = {}
    names = manifest["split"].astype(str)
    for split in sorted(names.unique()):
        rows = manifest[names == split]
        lines = sorted(f"{p}\t{int(label)}\t{subset}" for p, label, subset in zip(rows["path"], rows["label"], rows["subset"]))
        record[split] = {"options": options, "assignment": hashlib.sha256("\n".join(lines).encode()).hexdigest()}
    return record


def check_split_record(out: Path, previous: dict | None, now: dict[str, dict], manifest: pd.DataFrame) -> None:
    """Refuse to re-prepare ``out`` with a split that puts videos in other subsets than the
    recorded one; the error names the option that differs (or the assignment itself).

    Only splits recorded in both are compared (preparing another split is allowed). A folder
    prepared before splits were recorded is checked against its ``index.csv`` subsets.
    """
    if previous is None:
        _check_against_index(out, manifest)
        return
    for split in sorted(set(previous) & set(now)):
        old, new = previous[split], now[split]
        if old.get("assignment") == new["assignment"]:
            continue
        old_options, new_options = old.get("options") or {}, new["options"]
        changed = [f"{k} {old_options.get(k)!r} (prepared) vs {new_options.get(k)!r} (now)"
                   for k in sorted(set(old_options) | set(new_options)) if old_options.get(k) != new_options.get(k)]
        what = ", ".join(changed) if changed else "the videos' subsets (the split or list files changed?)"
        _refuse_resplit(out, split, what)


def _refuse_resplit(out: Path, split: str, what: str) -> None:
    raise InvalidValueError(
        f"{out} was prepared with another split {split}: {what}; re-preparing would move videos between train "
        "and test (a checkpoint trained before would then be tested on its own training videos): use a new "
        "--out or the same split settings")


def _check_against_index(out: Path, manifest: pd.DataFrame) -> None:
    """A folder prepared before splits were recorded: its ``index.csv`` subsets must agree with
    ``manifest`` for every video in both."""
    index_file = out / "index.csv"
    if not index_file.is_file():
        return
    try:
        index = pd.read_csv(index_file, keep_default_na=False)
    except (OSError, ValueError):
        return
    names = manifest["split"].astype(str)
    for split in sorted(names.unique()):
        column = f"subset_{split}"
        if column not in index.columns:
            continue
        recorded = dict(zip(index["path"].astype(str), index[column].astype(str)))
        rows = manifest[names == split]
        moved = [p for p, subset in zip(rows["path"], rows["subset"]) if recorded.get(p, subset) not in ("", subset)]
        if moved:
            _refuse_resplit(out, split, f"{len(moved)} video(s) would change subset (e.g. {moved[0]}: "
                                        f"{recorded[moved[0]]} -> {rows.set_index('path').loc[moved[0], 'subset']})")


def _check_job(workers: int, settings: PrepareSettings) -> None:
    if workers < 1:
        raise InvalidValueError(f"--num-workers must be >= 1, got {workers}")
    if settings.short_videos not in get_args(ShortVideos):
        raise InvalidValueError(f"short_videos must be 'loop' or 'skip', got {settings.short_videos!r}")


def prepare_manifest(
    manifest: pd.DataFrame,
    videos_dir: str | Path,
    out_dir: str | Path,
    *,
    dataset: str,
    workers: int = 1,
    allow_missing: bool = False,
    settings: PrepareSettings = PrepareSettings(),
    progress: bool = True,
) -> dict:
    """Verify and prepare the videos of a source's manifest (:mod:`snl_video.data.sources`).

    Every source ends here: the manifest is checked, missing videos are listed (an error
    unless ``allow_missing``), and the rest decoded and written exactly as for UCF-101.
    ``OUT/dataset.json`` records which source the directory holds; preparing another one
    into it is an error (a directory without it was written by ``prepare ucf101``).
    """
    videos_dir, out = Path(videos_dir), Path(out_dir)
    if not videos_dir.is_dir():
        raise MissingFileError(f"--videos {videos_dir} is not a directory")
    _check_job(workers, settings)
    check_manifest(manifest)
    splits = list(dict.fromkeys(manifest["split"].astype(str)))
    videos = manifest.drop_duplicates("path")[["path", "class_name", "label", "group"]].reset_index(drop=True)
    found = videos["path"].map(lambda p: (videos_dir / p).is_file())
    missing = sorted(videos.loc[~found, "path"])
    if missing and not found.any():
        # nothing found at all: most likely --videos points one level off
        raise MissingVideosError(f"none of the {len(missing)} listed videos is in --videos {videos_dir}: "
                                 f"{_misplaced_videos_hint(videos_dir, missing)}")
    if missing and not allow_missing:
        raise MissingVideosError(
            f"{len(missing)} listed videos are missing from {videos_dir}:\n  {_missing_summary(videos_dir, missing)}\n"
            f"fix --videos, or pass --allow-missing to prepare the others"
        )
    if missing:
        logger.warning("%d listed videos are missing; preparing the %d others:\n  %s", len(missing), int(found.sum()),
                       _missing_summary(videos_dir, missing))
    videos = videos[found].reset_index(drop=True)

    with output_lock(out, "prepare"):  # one writer per --out (creates it, checks it is writable)
        _claim_dataset(out, dataset)
        # every class name by label, also those no prepared video has (a subset of the dataset)
        if manifest.attrs.get("class_names"):
            atomic_write_json(out / "classes.json", [str(n) for n in manifest.attrs["class_names"]])
        return _prepare_locked(videos_dir, out, manifest, videos, missing, splits, workers, settings, progress)


def read_dataset_name(root: str | Path) -> str:
    """Which source a prepared directory holds (``dataset.json``; directories written before it are UCF-101)."""
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        return "ucf101"
    return str(json.loads(path.read_text())["dataset"])


def _claim_dataset(out: Path, dataset: str) -> None:
    path = out / DATASET_FILE
    if path.is_file() or (out / "settings.json").is_file():
        previous = read_dataset_name(out)
        if previous != dataset:
            raise InvalidValueError(f"{out} holds a prepared {previous!r} dataset, not {dataset!r}; use another --output-dir")
    if not path.is_file():
        atomic_write_json(path, {"dataset": dataset})

def _missing_summary(videos_dir: Path, missing: Sequence[str], limit: int = 20) -> str:
    """Missing videos, one line per class whose whole folder is absent, then single files."""
    by_class: dict[str, list[str]] = {}
    for path in missing:
        by_class.setdefault(Path(path).parent.as_posix(), []).append(path)
    lines = [f"{folder}/: the whole class folder is missing ({len(paths)} listed videos)"
             for folder, paths in by_class.items() if not (videos_dir / folder).is_dir()]
    files = [p for folder, paths in by_class.items() if (videos_dir / folder).is_dir() for p in paths]
    lines += files[:limit]
    if len(files) > limit:
        lines.append(f"... and {len(files) - limit} more files")
    return "\n  ".join(lines)


def _misplaced_videos_hint(videos_dir: Path, missing: Sequence[str]) -> str:
    """Where the listed videos are when --videos is one level too high or too low, else the expected layout."""
    probe = missing[:50]
    for child in sorted(p for p in videos_dir.iterdir() if p.is_dir()):
        if any((child / v).is_file() for v in probe):
            return f"the class folders seem to be one level down: use --videos {child}"
    if any((videos_dir.parent / v).is_file() for v in probe):
        return f"--videos seems to be a class folder: use --videos {videos_dir.parent}"
    return (f"expected class folders such as {videos_dir / Path(missing[0]).parent}/ holding the listed files "
            f"(e.g. {missing[0]}); fix --videos")


def _prepare_locked(
    videos_dir: Path,
    out: Path,
    manifest: pd.DataFrame,
    videos: pd.DataFrame,
    missing: list[str],
    splits: Sequence[str],
    workers: int,
    settings: PrepareSettings,
    progress: bool,
) -> dict:
    settings_file = out / "settings.json"
    splits_record = split_record(manifest)
    if settings_file.is_file():
        # directories prepared before storage was recorded hold raw frames
        previous = {"storage": "npy", **upgrade_settings(json.loads(settings_file.read_text()))}
        check_split_record(out, previous.pop(SPLITS_KEY, None), splits_record, manifest)
        if previous != settings.as_dict():
            now = settings.as_dict()
            changed = ", ".join(f"{k} {previous.get(k)!r} (prepared) vs {now.get(k)!r} (now)"
                                for k in sorted(set(previous) | set(now)) if previous.get(k) != now.get(k))
            flags = " ".join(f"--{k.replace('_', '-')} {previous[k]}" for k in sorted(set(previous) | set(now))
                             if previous.get(k) != now.get(k) and k in previous and k != "format_version")
            raise InvalidValueError(
                f"{out} was prepared with other settings: {changed}; use a new --output-dir or the same settings"
                + (f" ({flags})" if flags else "")
            )
    # the split record follows the index written below (the splits of this manifest)
    atomic_write_json(settings_file, {**settings.as_dict(), SPLITS_KEY: splits_record})
    removed = _remove_stale_temporaries(out)
    if removed:
        logger.info("removed %d temporary files left by an interrupted run", removed)

    records: dict[str, dict] = {}
    jobs = []
    for video in videos["path"]:
        done = _is_done(out, video, videos_dir / video, settings.storage)
        if done is not None:
            records[video] = done
        else:
            jobs.append((str(videos_dir / video), video, str(out), settings))
    logger.info("%d videos to prepare, %d already done, %d workers", len(jobs), len(records), workers)
    if workers == 1 or len(jobs) <= 1:
        for record in _progress(map(_run_job, jobs), enabled=progress, total=len(jobs), desc="prepare", unit="video"):
            records[record["path"]] = record
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            done_jobs = pool.imap_unordered(_run_job, jobs, chunksize=1)
            for record in _progress(done_jobs, enabled=progress, total=len(jobs), desc="prepare", unit="video"):
                records[record["path"]] = record

    ordered = [records[v] for v in videos["path"]]
    _write_index(out, manifest, videos, ordered, settings.storage)
    counts: dict[str, int] = {}
    for r in ordered:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    bad = [r for r in ordered if r["status"] != "ok"]
    for r in bad:
        logger.warning("%s: %s (%s)", r["path"], r["status"], r["reason"])
    report = {"settings": settings.as_dict(), "splits": [int(x) if x.isdigit() else x for x in splits],
              "dataset": read_dataset_name(out), "counts": counts,
              "missing": missing, "videos": ordered}
    atomic_write_json(out / "report.json", report)
    logger.info("prepared %s: %s; %d missing", out, counts, len(missing))
    if not any(r["status"] in KEPT_STATUSES for r in ordered):
        raise InvalidValueError(f"prepared 0 usable videos in {out} (statuses: {counts or 'none'}; {len(missing)} missing): "
                         f"see {out / 'report.json'}")
    return report


def _write_index(out: Path, manifest: pd.DataFrame, videos: pd.DataFrame, records: list[dict], storage: str) -> None:
    rows = []
    for (_, video), record in zip(videos.iterrows(), records):
        if record["status"] not in KEPT_STATUSES:
            continue
        rows.append({"path": video["path"], "class_name": video["class_name"], "label": int(video["label"]),
                     "status": record["status"], "video_frames": record["video_frames"], "height": record["height"],
                     "width": record["width"], "frames_file": frames_path(Path("."), video["path"], storage).as_posix(),
                     "group": video["group"]})
    index = pd.DataFrame(rows, columns=[*INDEX_COLUMNS, "group"])
    split_names = manifest["split"].astype(str)
    for split in sorted(split_names.unique()):
        subsets = manifest[split_names == split].set_index("path")["subset"]
        index[f"subset_{split}"] = index["path"].map(subsets).fillna("")
    tmp = out / f"index.csv.tmp-{os.getpid()}"
    try:
        index.to_csv(tmp, index=False)
        os.replace(tmp, out / "index.csv")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if os_error_in(exc) is None:
            raise
        raise write_error(out / "index.csv", exc, kept="the previous index and every prepared video are kept; "
                                                       "re-run the same command to resume") from exc
