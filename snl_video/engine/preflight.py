"""Start-up checks: everything about a run that can be checked cheaply, checked before anything heavy.

:func:`preflight` runs at the start of ``train`` and ``eval`` (before a checkpoint is read,
weights are loaded or a run folder is created) and in ``config check``. It goes beyond the
schema validation of :mod:`snl_video.config`, which needs nothing but the recipe, to what
depends on the registry and the data on disk:

* the model: its name is registered, its options are the model's, and the network with its
  non-local blocks can be built (positions in range for this backbone's stage depths, block
  options valid at the real widths). The build runs on PyTorch's ``meta`` device: no memory,
  no weights, a few milliseconds;
* the data: ``data.root`` holds a prepared index (or, with a decoding backend, the split
  files list the videos), the subsets the job needs are not empty, and
  ``model.num_classes`` covers every label of the dataset (otherwise the first training
  step fails with ``IndexError: Target 25 is out of bounds``) and is not larger than the
  dataset's class count unless ``model.allow_extra_classes`` says so on purpose.

Every problem is collected into one :class:`~snl_video.config.ConfigError`, keyed by the
config key to change, with the fix.
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..config import ConfigError, ExperimentConfig
from ..data.datasets import Subset
from ..data.video import VIDEO_SUFFIXES

logger = logging.getLogger(__name__)

__all__ = ["preflight", "model_problems", "data_problems", "dataset_class_count", "raw_video_tree_hint",
           "available_cpus", "usable_workers", "warn_if_slow_on_cpu", "input_size_problems",
           "clip_size_problem"]


def _suggest(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def model_problems(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """``(key, message)`` for every problem building the config's model would hit."""
    from ..models import list_models, model_entry

    name = cfg.model.name
    names = list_models()
    if name not in names:
        return [("model.name", f"unknown model {name!r}{_suggest(name, names)}; valid models: {', '.join(names)}")]
    valid = model_entry(name).options()
    problems = [(f"model.options.{key}", f"unknown option for model {name!r}{_suggest(key, list(valid))}; valid options: "
                 + (", ".join(f"{k}={v!r}" for k, v in valid.items()) or "none"))
                for key in cfg.model.options if key not in valid]
    if problems:
        return problems
    import dataclasses

    from .builders import build_model_from_config

    # The backbone first (its own options), then with the blocks, so each error names its key;
    # through the builder train and eval use, so the checked model is the one they build.
    for key, variant in (("model.options", dataclasses.replace(cfg, nonlocal_blocks=None)), ("nonlocal_blocks", cfg)):
        if key == "nonlocal_blocks" and cfg.nonlocal_blocks is None:
            break
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                build_model_from_config(variant, load_weights=False)
        except (ValueError, TypeError, KeyError) as exc:
            where = key
            if key == "nonlocal_blocks" and cfg.nonlocal_blocks is not None and cfg.nonlocal_blocks.positions is not None \
                    and ("position" in str(exc) or "block" in str(exc) and "index" in str(exc)):
                where = "nonlocal_blocks.positions"
            return [(where, f"{exc} (model {name!r})")]
        except RuntimeError as exc:  # a value check that reads a tensor cannot run on meta: not a config error
            if "meta" not in str(exc):
                raise
            logger.debug("preflight: %s could not be built on the meta device (%s); left to the real build", key, exc)
    return input_size_problems(cfg)


def input_size_problems(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """``[("data", message)]`` when the config's model cannot take a clip of the config's size
    (``data.num_frames`` x ``data.crop_size``²): e.g. torchvision's S3D, whose head pools a
    fixed 2x7x7 window, on 8x64² clips, or MViT-v2-S on anything but 16x224² (see
    :func:`clip_size_problem`, which finds it)."""
    from .builders import build_model_from_config

    d = cfg.data
    reason = clip_size_problem(lambda: build_model_from_config(cfg, load_weights=False),
                               num_frames=d.num_frames, crop_size=d.crop_size)
    if reason is None:
        return []
    return [("data", f"model {cfg.model.name!r} cannot take clips of {d.num_frames}x{d.crop_size}x{d.crop_size} "
                     f"(data.num_frames x data.crop_size^2): {reason}; change data.num_frames / data.crop_size "
                     f"(the model's recipe under `snl-video config list` names a size it takes)")]


def clip_size_problem(build: Callable[[], torch.nn.Module], *, num_frames: int, crop_size: int) -> str | None:
    """Why the model ``build()`` makes cannot take a ``(1, 3, num_frames, crop_size, crop_size)``
    clip (the first line of the error its forward raises), or None when it can.

    Found by one forward pass on the meta device (shapes only, no arithmetic); a failure there
    is confirmed by a real forward on the CPU before it is reported, so an operation without a
    meta implementation is never mistaken for a size problem. ``build`` is called under the
    device it should build on (no weights needed); a model it cannot build is not a size
    problem (None: whoever builds it for real reports that)."""
    shape = (1, 3, num_frames, crop_size, crop_size)

    def built(meta: bool) -> torch.nn.Module | None:
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta" if meta else "cpu"):
                return build().eval()
        except Exception as exc:  # noqa: BLE001 - reported (or not) by whoever builds the model for real
            logger.debug("preflight: model not built for the input-size check (%s)", exc)
            return None

    model = built(meta=True)
    if model is None:
        return None
    try:
        with torch.no_grad(), torch.device("meta"):
            model(torch.zeros(shape))
        return None
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
        logger.debug("preflight: a %s clip failed on the meta device (%s); checking on the CPU", shape, exc)
    model = built(meta=False)
    if model is None:
        return None
    try:
        with torch.no_grad():
            model(torch.zeros(shape))
    except (RuntimeError, ValueError) as exc:
        return str(exc).strip().splitlines()[0]
    return None


def raw_video_tree_hint(root: Path) -> str | None:
    """When ``root`` looks like a video tree (class folders of videos, or one level above
    them), the commands that prepare it or read it directly; else None."""
    candidates = [root] + ([p for p in sorted(root.iterdir()) if p.is_dir()][:20] if root.is_dir() else [])
    for videos in candidates:
        try:
            classes = [p for p in videos.iterdir() if p.is_dir()][:50]
        except OSError:
            continue
        if any(f.suffix.lower() in VIDEO_SUFFIXES for c in classes for f in list(c.iterdir())[:20]):
            out = videos.parent / f"{videos.name.lower().replace('-', '')}_prepared"
            for source, split_name in (("ucf101", "ucfTrainTestlist"), ("hmdb51", "testTrainMulti_7030_splits")):
                splits = next((p for p in (videos.parent / split_name, videos / split_name,
                                           videos.parent.parent / split_name) if p.is_dir()), None)
                if splits is not None or (source == "ucf101" and videos.name == "UCF-101"):
                    splits_text = str(splits) if splits is not None else f"<the {split_name} folder>"
                    return (f"{root} is a video tree, not a prepared dataset: prepare it once with `snl-video prepare "
                            f"{source} --videos {videos} --splits {splits_text} --output-dir {out}` and set "
                            f"data.root={out}; or read the videos directly (slower) with data.backend=pyav "
                            f"data.root={videos} data.splits_dir={splits_text}")
            # a tree of the user's own classes, with no official split files: `prepare folder` draws the subsets
            return (f"{root} is a video tree, not a prepared dataset: prepare it once with `snl-video prepare folder "
                    f"--videos {videos} --output-dir {out}` (one sub-folder of videos per class; test videos drawn "
                    f"per class) and set data.root={out}")
    return None


def data_problems(cfg: ExperimentConfig, *, subsets: Sequence[Subset] = ("train", "test"),
                  missing_root_is_error: bool = True) -> list[tuple[str, str]]:
    """``(key, message)`` for a data root without a usable dataset, an empty subset, or labels
    beyond ``model.num_classes``. Reads only the index / split files, never a video."""
    from .builders import build_dataset

    d = cfg.data
    root = Path(d.root)
    if not root.exists():
        if not missing_root_is_error:
            logger.warning("data.root=%s does not exist here: train and eval will stop until it does", d.root)
            return []
        return [("data.root", f"{d.root} does not exist: give the folder written by `snl-video prepare ucf101 --output-dir ...`")]
    if d.backend == "prepared" and not (root / "index.csv").is_file():
        hint = raw_video_tree_hint(root)
        return [("data.root", hint or f"{d.root} holds no prepared index (index.csv): give the folder written by "
                                      f"`snl-video prepare ucf101 --videos ... --splits ... --output-dir {d.root}`, or finish "
                                      f"that prepare (re-run it: it resumes)")]
    problems: list[tuple[str, str]] = []
    max_label = -1
    for subset in subsets:
        try:
            dataset = build_dataset(cfg, subset=subset, mode="clip")
        except (ValueError, FileNotFoundError, OSError) as exc:
            text = str(exc)
            if "no videos" in text:
                text = (f"the {subset} subset of split {d.split} in {d.root} is empty (no usable video): check "
                        f"data.split and the prepare report (report.json)")
            problems.append(("data", text))
            continue
        if len(dataset) == 0:
            problems.append(("data", f"the {subset} subset of split {d.split} in {d.root} is empty"))
            continue
        max_label = max(max_label, max(dataset.labels))
    if max_label >= cfg.model.num_classes:
        problems.append(("model.num_classes", f"is {cfg.model.num_classes}, but the dataset in {d.root} has labels up to "
                                              f"{max_label} (0-based): set model.num_classes={max_label + 1} or more"))
    elif max_label >= 0 and not cfg.model.allow_extra_classes:
        classes = dataset_class_count(cfg, labels_seen=max_label + 1 if set(subsets) >= {"train", "test"} else None)
        if classes is not None and cfg.model.num_classes > classes:
            problems.append(("model.num_classes", (
                f"is {cfg.model.num_classes}, but the dataset in {d.root} has {classes} classes: the head would have "
                f"{cfg.model.num_classes - classes} classes no video has (and predict would rank them); set "
                f"model.num_classes={classes}, or model.allow_extra_classes=true for a deliberately larger head")))
    return problems


def dataset_class_count(cfg: ExperimentConfig, *, labels_seen: int | None = None) -> int | None:
    """How many classes the dataset has: its full class list (``classes.json`` of a prepared
    folder, ``classInd.txt`` of ``data.splits_dir``), else the labels of the prepared index,
    else ``labels_seen`` (the labels of every subset, when the caller read them all); None
    when it cannot be told."""
    from .naming import full_class_list

    every = full_class_list(cfg)
    if every is not None:
        return len(every)
    if cfg.data.backend == "prepared":
        import pandas as pd

        try:
            labels = pd.read_csv(Path(cfg.data.root) / "index.csv", usecols=["label"])["label"]
        except (OSError, ValueError):
            return labels_seen
        return int(labels.max()) + 1 if len(labels) else labels_seen
    return labels_seen


def preflight(cfg: ExperimentConfig, *, subsets: Sequence[Subset] = ("train", "test"), data: bool = True,
              missing_root_is_error: bool = True, trackers: bool = True) -> None:
    """Run :func:`model_problems`, (with ``data``) :func:`data_problems` and (with ``trackers``,
    on the main process, the one that logs) the check that every logger of ``runtime.loggers``
    is installed; raise them all at once.

    Raises:
        ConfigError: every problem, keyed by the config key to change.
    """
    from . import distributed as dist_utils
    from .trackers import tracker_problems

    problems = tracker_problems(cfg) if trackers and dist_utils.is_main() else []
    problems += model_problems(cfg)
    if data:
        problems += data_problems(cfg, subsets=subsets, missing_root_is_error=missing_root_is_error)
    if problems:
        raise ConfigError(problems, source="start-up checks")


# --------------------------------------------------------------------------------------
# Defaults that fit the machine
# --------------------------------------------------------------------------------------

_workers_reported: set[tuple[int, int]] = set()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as PyTorch's DataLoader counts them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def usable_workers(requested: int) -> int:
    """``data.num_workers`` lowered to the CPUs available, with one INFO line per run (instead of
    PyTorch's warning on every loader of every epoch). Loading is seeded per item, so the
    number of workers never changes what is loaded."""
    cpus = available_cpus()
    if requested <= cpus:
        return requested
    if (requested, cpus) not in _workers_reported:
        _workers_reported.add((requested, cpus))
        logger.info("data.num_workers=%d but %d CPU(s) are available: using %d loader workers", requested, cpus, cpus)
    return cpus


#: An evaluation projected to take longer than this on the CPU is announced at its start.
SLOW_CPU_EVAL_SECONDS = 600.0


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


@torch.no_grad()
def warn_if_slow_on_cpu(model: torch.nn.Module, cfg: ExperimentConfig, *, num_videos: int | None = None) -> float:
    """Time one clip through ``model`` and project the whole evaluation (clip level + video
    level: ``num_clips x num_crops`` views per test video). When it exceeds
    :data:`SLOW_CPU_EVAL_SECONDS`, say so with the override that shortens it. Returns the
    projected seconds."""
    import time

    from .builders import build_dataset

    if num_videos is None:
        num_videos = len(build_dataset(cfg, subset="test", mode="clip"))
    d = cfg.data
    clip = torch.zeros(1, 3, d.num_frames, d.crop_size, d.crop_size)
    was_training = model.training
    model.eval()
    model(clip)  # warm-up: first-call allocations
    start = time.perf_counter()
    model(clip)
    per_view = time.perf_counter() - start
    model.train(was_training)
    views = cfg.eval.num_clips * cfg.eval.num_crops
    projected = per_view * num_videos * (1 + views)
    if projected > SLOW_CPU_EVAL_SECONDS:
        quick = per_view * num_videos * 2
        logger.warning(
            "evaluating on the CPU: about %s for %d test videos x (1 centre clip + %d clips x %d crops) at %.2f s per "
            "clip; eval.num_clips=1 eval.num_crops=1 takes about %s (clip-level numbers are unchanged), or run on a GPU",
            _duration(projected), num_videos, cfg.eval.num_clips, cfg.eval.num_crops, per_view, _duration(quick))
    return projected
