"""Records of what made an output, checked when the output is reused: no silent mixing.

* **Features**: ``features`` writes ``features.json`` into its ``--out`` (the model's weights
  digest, the layer, the clip protocol, the input spec, the decoder); a rerun into that folder
  with other settings is refused with one line naming what differs, unless ``overwrite``
  (then the files the earlier run listed are removed first, so nothing of it is mixed in).
* **Training videos**: a checkpoint records a fingerprint of the videos it was trained on
  (:func:`dataset_fingerprint`: a digest of the sorted relative paths and their count, plus a
  short hash of each path); ``eval`` on a test subset that holds any of them is an error
  naming how many (:func:`check_train_test_overlap`; opt out with ``--allow-train-overlap``),
  and ``train --resume`` on a training set that changed since the run started (the data was
  re-split) is refused (:func:`check_resume_videos`).
  The run folder keeps the digest in ``train_videos.json``, so ``compare`` and a study can
  say when runs were trained on different data (:func:`check_same_dataset`).

A video's identity is its path relative to the dataset (``Class/v_x.avi``, as the prepared
index and the split files name it): the same video prepared into another folder, or read
from the original files, is the same video.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, Sequence

from ..errors import InvalidValueError
from ..fileio import atomic_write_text

if TYPE_CHECKING:
    from torch import nn

    from ..config import ExperimentConfig
    from .loading import InferenceModel

logger = logging.getLogger(__name__)

__all__ = ["FEATURES_RECORD", "TRAIN_VIDEOS_RECORD", "TrainTestOverlapError", "weights_digest", "features_record",
           "check_features_record", "write_features_record", "dataset_videos", "dataset_fingerprint",
           "train_fingerprint", "check_train_test_overlap", "check_resume_videos", "read_run_fingerprint",
           "check_same_dataset", "describe_fingerprint"]

#: Written by ``features`` into its output folder.
FEATURES_RECORD = "features.json"
#: Written by ``train`` into its run folder (the digest and count; the checkpoint has the per-video hashes).
TRAIN_VIDEOS_RECORD = "train_videos.json"


class TrainTestOverlapError(InvalidValueError):
    """The test subset holds videos the checkpoint was trained on."""


# --------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------


def weights_digest(model: "nn.Module") -> str:
    """sha256 of a model's tensors (names, dtypes, shapes and values, in key order): the
    identity of the weights whatever file or registry name they came from."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def features_record(loaded: "InferenceModel", *, layer: str | None, per_clip: bool, num_clips: int, num_crops: int,
                    backend: Any = None) -> dict[str, Any]:
    """What makes a features folder's files: the weights, the layer, the clip protocol, the input spec."""
    return {
        "weights_sha256": weights_digest(loaded.model),
        "model": loaded.architecture,
        "layer": layer if layer is not None else "pooled",
        "per_clip": bool(per_clip),
        "num_clips": int(num_clips),
        "num_crops": int(num_crops),
        "input_spec": loaded.input_spec.to_dict(),
        "backend": str(backend) if backend is not None else "default",
        "source": loaded.source,  # where the weights came from: said in messages, not compared
    }


_NOT_COMPARED = ("source",)


def check_features_record(out: str | os.PathLike[str], record: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Refuse to add ``record``'s features to a folder written with other settings.

    A folder with ``features.json`` of other settings (or ``.npy`` files and no record: written
    before records existed) is an error naming the first difference, unless ``overwrite``: then
    the files the earlier run listed in its ``index.csv`` and its record are removed, so the
    new run recomputes every video. Same settings: nothing to do (the rerun resumes).
    """
    out = Path(out)
    path = out / FEATURES_RECORD
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = {}
        differences = [k for k in record if k not in _NOT_COMPARED and previous.get(k) != record.get(k)]
        if not differences:
            return
        key = differences[0]
        more = f" (and {len(differences) - 1} more: {', '.join(differences[1:])})" if len(differences) > 1 else ""
        what = (f"{key}: {_short(previous.get(key))} (recorded, from {previous.get('source', '?')}) vs "
                f"{_short(record.get(key))} (now, from {record.get('source', '?')}){more}")
    elif any(out.rglob("*.npy")):
        what = f"it holds .npy files but no {FEATURES_RECORD} saying what made them"
    else:
        return
    if not overwrite:
        raise InvalidValueError(f"features: {out} was written with other settings: {what}; use another --out, or "
                                "pass --overwrite to replace its files")
    removed = _remove_listed_features(out)
    path.unlink(missing_ok=True)
    logger.warning("features: --overwrite: %s had other settings (%s); removed its %d feature files", out, what, removed)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _remove_listed_features(out: Path) -> int:
    """Remove the ``.npy`` files an earlier run listed in ``index.csv`` (or every ``.npy`` under
    ``out`` when there is no index) and the index; returns how many files went."""
    import csv

    index = out / "index.csv"
    files: Iterable[Path]
    if index.is_file():
        with open(index, newline="") as f:
            files = [out / row["features"] for row in csv.DictReader(f) if row.get("features")]
    else:
        files = list(out.rglob("*.npy"))
    removed = 0
    for file in files:
        if file.is_file() and file.resolve().is_relative_to(out.resolve()):
            file.unlink()
            removed += 1
    index.unlink(missing_ok=True)
    return removed


def write_features_record(out: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write ``features.json`` (atomically), before the first feature file."""
    return atomic_write_text(Path(out) / FEATURES_RECORD, json.dumps(dict(record), indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------
# Training videos
# --------------------------------------------------------------------------------------


def dataset_videos(cfg: "ExperimentConfig", subset: Literal["train", "val", "test"]) -> list[str]:
    """Relative paths of the videos of ``subset`` of ``cfg``'s split (``train``: the whole
    training list, validation videos carved from it included)."""
    root = Path(cfg.data.root)
    if cfg.data.backend == "prepared":
        from ..data.datasets import split_rows
        from ..data.prepared import load_index

        rows = split_rows(load_index(root), split=cfg.data.split, subset=subset, dataset=cfg.data.dataset,
                          where=str(root))
        return sorted(str(p) for p in rows["path"])
    from .builders import build_dataset

    dataset = build_dataset(cfg, subset=subset, mode="clip")
    return sorted(Path(os.path.relpath(e.path, root)).as_posix() for e in dataset.videos)


def _video_hash(path: str) -> str:
    return hashlib.sha256(Path(path).as_posix().encode()).hexdigest()[:16]


def dataset_fingerprint(videos: Sequence[str]) -> dict[str, Any]:
    """``count``, ``sha256`` (of the sorted relative paths) and ``videos`` (a 16-hex hash of
    each path, sorted): what a checkpoint records of the videos it was trained on."""
    paths = sorted(Path(v).as_posix() for v in videos)
    return {"count": len(paths), "sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest(),
            "videos": sorted(_video_hash(p) for p in paths)}


def train_fingerprint(cfg: "ExperimentConfig") -> dict[str, Any]:
    """:func:`dataset_fingerprint` of ``cfg``'s training list."""
    return dataset_fingerprint(dataset_videos(cfg, "train"))


def check_train_test_overlap(fingerprint: Mapping[str, Any] | None, cfg: "ExperimentConfig", *,
                             allow: bool = False, checkpoint: str | os.PathLike[str] = "the checkpoint",
                             trained_split: object = None) -> int:
    """How many of ``cfg``'s test videos the checkpoint was trained on; any is an error
    (:class:`TrainTestOverlapError`, naming how many) unless ``allow``. A checkpoint without
    a fingerprint (written before they were recorded) is not checked (0). ``trained_split``
    (the split the checkpoint's recipe names, when known) lets the message say the cause
    when it is another split than ``cfg.data.split`` (the official splits share videos)."""
    if not fingerprint or not isinstance(fingerprint.get("videos"), (list, tuple)):
        return 0
    trained = set(fingerprint["videos"])
    test = dataset_videos(cfg, "test")
    shared = [v for v in test if _video_hash(v) in trained]
    if not shared:
        return 0
    if trained_split is not None and str(trained_split) != str(cfg.data.split):
        cause = (f"it was trained on split {trained_split}, and the splits re-partition the same videos; evaluate "
                 f"with data.split={trained_split}")
    else:
        cause = ("the data was split differently since (re-prepared with another --test-fraction / --seed / split "
                 "files?); evaluate on the split it was trained on")
    message = (f"{len(shared)} of the {len(test)} test videos of {cfg.data.root} (split {cfg.data.split}) were in "
               f"the training set of {checkpoint} (e.g. {shared[0]}): {cause}, as its score would be inflated, "
               "or pass --allow-train-overlap to evaluate anyway")
    if not allow:
        raise TrainTestOverlapError(message)
    logger.warning("--allow-train-overlap: %s", message)
    return len(shared)


def describe_fingerprint(fingerprint: Mapping[str, Any]) -> str:
    """``12 videos, 11f572921f5f``: a training-set fingerprint as messages name it."""
    return f"{fingerprint.get('count', '?')} videos, {str(fingerprint.get('sha256', '?'))[:12]}"


def check_resume_videos(recorded: Mapping[str, Any] | None, cfg: "ExperimentConfig", *,
                        checkpoint: str | os.PathLike[str] = "the checkpoint") -> dict[str, Any]:
    """Refuse to resume on a training set other than the one the checkpoint was trained on.

    ``recorded``: the checkpoint's ``train_videos`` (:func:`dataset_fingerprint`); ``cfg``'s
    training list is fingerprinted now and compared. A dataset re-prepared in place with
    another split between the run's start and its resume would otherwise continue the run
    on other videos (some of them perhaps its test videos) under the same record. A
    checkpoint without a fingerprint (written before they were recorded) is not checked.
    Returns the current fingerprint.

    Raises:
        InvalidValueError: one line naming both training sets and how to go on.
    """
    current = train_fingerprint(cfg)
    if not recorded or "sha256" not in recorded or recorded["sha256"] == current["sha256"]:
        return current
    raise InvalidValueError(
        f"--resume: the training set of {cfg.data.root} (split {cfg.data.split}) changed since {checkpoint} was "
        f"trained on it ({describe_fingerprint(recorded)} then, {describe_fingerprint(current)} now: re-prepared with "
        "another --test-fraction / --seed / split files?); start a new run (another runtime.output_dir, without "
        "--resume), or re-prepare the data with the settings the run started with")


def read_run_fingerprint(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The training-videos record of a run folder (``train_videos.json``), or None (an older run)."""
    path = Path(run_dir) / TRAIN_VIDEOS_RECORD
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "sha256" in data else None


def check_same_dataset(runs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """One warning line per split whose runs were trained on different videos (their
    ``train_videos.json`` digests differ), naming the groups; ``[]`` when they agree. Runs of
    different splits (``data.split``) are trained on different videos by design and are not
    compared; runs without a record (trained before it existed) are named in the warning."""
    by_split: dict[str, dict[str, list[str]]] = {}
    unknown = []
    for run in runs:
        record = read_run_fingerprint(run)
        if record is None:
            unknown.append(str(run))
            continue
        groups = by_split.setdefault(str(record.get("split", "?")), {})
        groups.setdefault(f"{record['sha256'][:12]} ({record.get('count', '?')} videos)", []).append(str(run))
    lines = []
    for split, groups in by_split.items():
        if len(groups) <= 1:
            continue
        parts = "; ".join(f"{key}: {', '.join(names)}" for key, names in groups.items())
        tail = f"; no record: {', '.join(unknown)}" if unknown else ""
        lines.append(f"runs of split {split} were trained on {len(groups)} different sets of videos (dataset "
                     f"fingerprints {parts}{tail}): their scores are not a like-for-like comparison")
    return lines
