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
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["class_order", "full_class_list", "source_video_names"]


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


def _unnamed(names: Sequence[str]) -> bool:
    """Whether ``names`` only number the classes (``0, 1, ...`` or ``class_0, class_1, ...``)."""
    return all(n in (str(i), f"class_{i}") for i, n in enumerate(names))


def class_order(model_names: Sequence[str] | None, dataset_names: Sequence[str] | None, *,
                model_source: str = "the checkpoint", strict: bool = True) -> list[int] | None:
    """Which output of the model scores each class of the dataset: ``order[label]`` is the
    model's output index of the dataset's class ``label``; ``None`` when they are the same.

    A model scores classes by position, so a checkpoint trained on one preparation of a
    dataset and evaluated on another that numbers the same classes differently (UCF-101's
    ``classInd.txt`` order vs the sorted folders of ``prepare folder``) would be scored against
    the wrong labels while every number still looks plausible. The same names in another
    order are matched by name (``order``); other names are an error (``strict``, the default)
    or, without ``strict``, a warning (heads whose names are spelled otherwise than the
    dataset's folders, e.g. a registry's Kinetics names). Names that only number the classes
    (``class_0``, ``0``) on either side cannot be matched and are not checked.

    Raises:
        InvalidValueError: with ``strict``, the two class lists name different classes.
    """
    if model_names is None or dataset_names is None:
        return None
    model_names, dataset_names = [str(n) for n in model_names], [str(n) for n in dataset_names]
    if model_names == dataset_names or _unnamed(model_names) or _unnamed(dataset_names):
        return None
    position = {name: i for i, name in enumerate(model_names)}
    if len(position) == len(model_names) == len(set(dataset_names)) == len(dataset_names) \
            and set(dataset_names) == set(position):
        order = [position[name] for name in dataset_names]
        moved = [name for label, name in enumerate(dataset_names) if order[label] != label]
        logger.warning("%s numbers the classes in another order than the dataset (%d of %d classes moved, e.g. %r "
                       "is its output %d, the dataset's label %d): its outputs are matched to the dataset's classes by "
                       "name", model_source, len(moved), len(dataset_names), moved[0], position[moved[0]],
                       dataset_names.index(moved[0]))
        return order
    unknown = [n for n in dataset_names if n not in position] or [n for n in model_names if n not in dataset_names]
    message = (f"{model_source} was trained on other classes than the dataset's: the dataset's "
               f"{len(dataset_names)} classes and its {len(model_names)} differ (e.g. {unknown[0]!r}; its "
               f"classes: {', '.join(model_names[:5])}{', ...' if len(model_names) > 5 else ''}); evaluate it on "
               "the dataset it was trained on (data.root=...), or fine-tune it on this one"
               if unknown else
               f"{model_source} and the dataset name their classes ambiguously (a name repeated): "
               f"rename the repeated classes")
    if strict:
        raise InvalidValueError(message)
    logger.warning("%s; scored by position", message)
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
