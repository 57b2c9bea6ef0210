"""Readable names for evaluation outputs: every class by label, and each test video by its source file.

People read ``per_class_accuracy.csv``, the confusion matrix and ``predictions.csv`` with
the dataset in mind: a class is its name (also for classes a subset of the dataset does not
contain) and a video is the file its split list names (``Class/v_x_g01_c01.avi``), not the
prepared ``.npy`` it was read from.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..config import ExperimentConfig

logger = logging.getLogger(__name__)

__all__ = ["full_class_list", "source_video_names"]


def full_class_list(cfg: ExperimentConfig) -> list[str] | None:
    """The dataset's class names by label (``classes.json`` of a prepared folder, or
    ``classInd.txt`` of ``data.splits_dir``); ``None`` when neither can be read."""
    d = cfg.data
    if d.backend == "prepared":
        path = Path(d.root) / "classes.json"
        try:
            names = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return [str(n) for n in names] if isinstance(names, list) else None
    if d.splits_dir:
        from ..data.ucf101 import read_class_index

        try:
            return read_class_index(d.splits_dir)
        except (OSError, ValueError):
            return None
    return None


def source_video_names(cfg: ExperimentConfig, frame_paths: Sequence[str]) -> list[str]:
    """For each video of a dataset (its ``VideoEntry.path``), the path its split list names
    (``Class/v_x.avi``): from the prepared index, or relative to ``data.root`` for a video tree."""
    root = Path(cfg.data.root)
    by_file: dict[str, str] = {}
    if cfg.data.backend == "prepared":
        try:
            index = pd.read_csv(root / "index.csv", usecols=["path", "frames_file"], keep_default_na=False)
            by_file = dict(zip(index["frames_file"].astype(str), index["path"].astype(str)))
        except (OSError, ValueError):
            by_file = {}
    names = []
    for path in frame_paths:
        p = Path(path)
        try:
            rel = p.relative_to(root).as_posix()
        except ValueError:
            rel = None
        if rel is not None and rel in by_file:
            names.append(by_file[rel])
        elif rel is not None and cfg.data.backend != "prepared":
            names.append(rel)
        else:
            names.append(f"{p.parent.name}/{p.name}")
    return names
