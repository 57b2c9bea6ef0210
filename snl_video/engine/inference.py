"""Inference on videos: load any trained or pretrained model with what it needs, and predict.

:func:`load_inference_model` turns a training checkpoint (self-describing, or with its
recipe), a weights registry name or a foreign checkpoint file into an
:class:`InferenceModel`: the network in eval mode plus its class names, input
normalisation, clip spec and evaluation protocol (clips x crops). ``predict``,
``explain``, ``features`` and ``export`` all start from it.

:func:`predict` scores video files exactly as ``eval`` scores its video-level protocol —
the same :class:`~snl_video.data.datasets.ClipDataset` (``mode="video"``: ``num_clips``
uniform clips x ``num_crops`` crops through the same ``eval_transform``), the same
batched forward (:func:`snl_video.engine.evaluate.predict`) and the same averaging
(:func:`snl_video.engine.metrics.aggregate_video_predictions`); a test checks that the
scores equal ``eval``'s per-video row. With ``window``/``stride`` (seconds) it gives a
timeline instead: each window is covered by the non-overlapping clips of
:func:`~snl_video.data.sampling.sliding_clips` and scored the same way.

Bad files in a folder (empty, truncated, not a video) are reported with their reason in
:attr:`PredictResult.errors`; the other videos are still predicted.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import ExperimentConfig
from ..data.datasets import ClipDataset, VideoEntry
from ..data.decoding import Backend, DecodeError, iter_frames, probe_video, read_frames
from ..data.sampling import clip_span, sliding_clips
from ..data.transforms import NormalizationSpec, eval_transform
from ..fileio import atomic_write_text
from ..progress import progress as progress_bar

logger = logging.getLogger(__name__)

__all__ = [
    "VIDEO_EXTENSIONS",
    "InferenceModel",
    "ClassProbability",
    "Prediction",
    "PredictionError",
    "PredictResult",
    "load_inference_model",
    "find_videos",
    "predict",
]

#: File suffixes taken as videos when a folder is given (any container FFmpeg reads).
VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv",
                                     ".wmv", ".3gp", ".ogv", ".ts")
Reduce = Literal["mean_prob", "mean_logit"]


# --------------------------------------------------------------------------------------
# A model with everything needed to feed it
# --------------------------------------------------------------------------------------


@dataclass
class InferenceModel:
    """A network in eval mode and the facts needed to feed it and read its output.

    ``num_clips`` x ``num_crops`` and ``reduce`` are the default video-level protocol (the
    checkpoint's recipe, or the registry entry's evaluation protocol).
    """

    model: nn.Module
    architecture: str
    class_names: list[str]
    normalization: NormalizationSpec
    num_frames: int
    sampling_stride: int
    crop_size: int
    num_clips: int
    num_crops: Literal[1, 3]
    reduce: Reduce
    source: str
    recipe: ExperimentConfig | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: False when the clip spec is a guess (a foreign file with no registry entry).
    input_known: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _generic_names(count: int) -> list[str]:
    return [f"class_{i}" for i in range(count)]


def _load_state_strict(model: nn.Module, state: dict[str, Any], *, path: Any, model_desc: str) -> None:
    """``load_state_dict`` with an error that names the mismatch and the fix."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} mis-shaped (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise ValueError(f"{path} does not fit {model_desc}: {', '.join(parts)} tensors; is it a checkpoint of this "
                         "architecture? Pass the recipe it was trained with (--config), or --weights for foreign files")
    model.load_state_dict(state)


def _from_training_checkpoint(
    state: dict[str, Any], path: Any, *, config: Any, overrides: Sequence[str]
) -> InferenceModel:
    from .builders import build_model_from_config
    from .checkpoint import describe_checkpoint

    d = describe_checkpoint(state, path=path, config=config, overrides=overrides)
    cfg = d.recipe
    model = build_model_from_config(cfg, load_weights=False)
    nl = cfg.nonlocal_blocks.kind if cfg.nonlocal_blocks is not None else "no non-local blocks"
    _load_state_strict(model, state["model"], path=path, model_desc=f"{cfg.model.name} + {nl} (recipe {cfg.name!r})")
    names = d.class_names if d.class_names is not None else _generic_names(cfg.model.num_classes)
    return InferenceModel(
        model=model.eval(), architecture=cfg.model.name, class_names=names, normalization=d.normalization,
        num_frames=d.num_frames, sampling_stride=d.sampling_stride, crop_size=d.crop_size,
        num_clips=cfg.eval.num_clips, num_crops=cfg.eval.num_crops, reduce=cfg.eval.reduce,
        source=str(path), recipe=cfg,
    )


def _registry_defaults(entry: Any) -> dict[str, Any]:
    c = entry.clip
    return dict(
        normalization=NormalizationSpec(tuple(c.mean), tuple(c.std), float(c.value_scale)),
        num_frames=c.num_frames, sampling_stride=c.sampling_stride, crop_size=c.crop_size,
        num_clips=getattr(entry, "eval_num_clips", 10), num_crops=getattr(entry, "eval_num_crops", 3),
    )


def _class_names_for(entry: Any, count: int) -> list[str]:
    names = getattr(entry, "class_names", None) if entry is not None else None
    if names and len(names) == count:
        return list(names)
    return _generic_names(count)


def _guess_model_name(state: dict[str, torch.Tensor]) -> str | None:
    """The registered architecture whose backbone tensors (names and shapes) match ``state``."""
    from ..models import list_models
    from ..models.registry import _backbone_signature, _registered_signature

    theirs = _backbone_signature(state, ())
    for name in list_models():
        if _registered_signature(name, ()) == theirs:
            return name
    return None


def _from_weights(weights: str | os.PathLike[str], *, allow_unsafe_pickle: bool) -> InferenceModel:
    """A registry name, or a foreign checkpoint file (its registry entry found by file name,
    or its architecture by its tensors)."""
    from ..models import build_model
    from ..weights import get_weights, list_weights
    from ..weights.formats import convert_state, read_checkpoint
    from ..weights.registry import WEIGHTS

    name = str(weights)
    if not Path(name).is_file():
        if name not in list_weights():
            raise FileNotFoundError(f"--weights {name!r} is neither an existing file nor a registry name "
                                    "(`snl-video weights list` shows the names)")
        entry = get_weights(name)
        model = build_model(entry.architecture, num_classes=entry.num_classes, pretrained=name)
        return InferenceModel(model=model.eval(), architecture=entry.architecture,
                              class_names=_class_names_for(entry, entry.num_classes), reduce="mean_prob",
                              source=name, **_registry_defaults(entry))
    path = Path(name)
    detected = read_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle)
    entry = next((e for e in WEIGHTS if e.file_name == path.name), None)
    options: dict[str, Any] = dict(entry.model_options) if entry is not None else {}
    arch = entry.architecture if entry is not None else _guess_model_name(convert_state(detected))
    if arch is None:
        raise ValueError(f"{path}: {detected.describe()} matches no registered architecture (`snl-video weights "
                         "inspect` shows what it holds); load it with a recipe (pretrained: FILE) and train, or "
                         "use a registry name")
    num_classes = detected.num_classes
    if num_classes is None:
        raise ValueError(f"{path} has no classifier head: it cannot predict classes; pass --head-from CKPT "
                         "(eval) or a checkpoint with a head")
    model = build_model(arch, num_classes=num_classes, pretrained=path, **options)
    if entry is None:  # same architecture and format in the registry: its input spec
        entry = next((e for e in WEIGHTS if e.architecture == arch and e.format == detected.format), None)
    if entry is None:
        from .builders import KINETICS_MEAN, KINETICS_STD

        logger.warning("%s: no registry entry for %s %s files; assuming 16x112 clips with the Kinetics mean/std",
                       path, detected.format, arch)
        defaults = dict(normalization=NormalizationSpec(KINETICS_MEAN, KINETICS_STD, 1.0), num_frames=16,
                        sampling_stride=1, crop_size=112, num_clips=10, num_crops=3, input_known=False)
    else:
        defaults = _registry_defaults(entry)
    names = _class_names_for(entry, num_classes)
    if names[0] == "class_0":
        names = _known_class_list(num_classes) or names
    return InferenceModel(model=model.eval(), architecture=arch, class_names=names, reduce="mean_prob",
                          source=str(path), **defaults)


def _known_class_list(count: int) -> list[str] | None:
    """Kinetics class names for a head of ``count`` classes, when a registry entry has them."""
    from ..weights.registry import WEIGHTS

    for e in WEIGHTS:
        names = getattr(e, "class_names", None)
        if names and len(names) == count:
            return list(names)
    return None


def _is_training_checkpoint(path: Path) -> dict[str, Any] | None:
    """The state of an ``snl-video train`` checkpoint, or None for anything else."""
    from .checkpoint import load_checkpoint

    try:
        state = load_checkpoint(path)
    except ValueError:
        return None
    return state if isinstance(state.get("model"), dict) and ("recipe" in state or "epoch" in state) else None


def load_inference_model(
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | ExperimentConfig | None = None,
    overrides: Sequence[str] = (),
    device: str | torch.device = "cpu",
    allow_unsafe_pickle: bool = False,
) -> InferenceModel:
    """Exactly one of ``checkpoint`` (an ``snl-video train`` file; ``config`` for one written
    before checkpoints stored their recipe) or ``weights`` (a registry name or a foreign
    checkpoint file: Kinetics class names then)."""
    from .builders import resolve_device

    if (checkpoint is None) == (weights is None):
        raise ValueError("give exactly one of --checkpoint CKPT (a training checkpoint) or --weights NAME|FILE")
    if checkpoint is not None:
        from .checkpoint import load_checkpoint

        state = load_checkpoint(checkpoint)
        loaded = _from_training_checkpoint(state, checkpoint, config=config, overrides=overrides)
    else:
        if config is not None:
            raise ValueError("--config goes with --checkpoint; --weights carries its own spec")
        state = _is_training_checkpoint(Path(weights)) if Path(str(weights)).is_file() else None
        if state is not None:
            loaded = _from_training_checkpoint(state, weights, config=None, overrides=overrides)
        else:
            loaded = _from_weights(weights, allow_unsafe_pickle=allow_unsafe_pickle)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    loaded.model.to(dev)
    loaded.device = dev
    return loaded


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassProbability:
    """One class of a top-k list: its name, head index and probability in [0, 1]."""

    class_name: str
    index: int
    probability: float


@dataclass(frozen=True)
class Prediction:
    """Top-k of one video (``start_s = 0``, ``end_s`` its duration) or of one window of it.

    ``probabilities`` holds every class (head order), averaged over the clips x crops.
    """

    video: str
    start_s: float
    end_s: float
    top_k: tuple[ClassProbability, ...]
    probabilities: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class PredictionError:
    """A video that could not be predicted, and why."""

    video: str
    reason: str


@dataclass
class PredictResult:
    """Every prediction (per video, or per window with ``window``) and every failed video."""

    predictions: list[Prediction]
    errors: list[PredictionError]
    class_names: list[str]
    top_k: int
    notes: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        """``{"predictions": [{"video", "start_s", "end_s", "top_k": [{"class", "probability"}]}],
        "errors": [{"video", "reason"}]}``."""
        return {
            "predictions": [
                {"video": p.video, "start_s": round(p.start_s, 4), "end_s": round(p.end_s, 4),
                 "top_k": [{"class": c.class_name, "probability": c.probability} for c in p.top_k]}
                for p in self.predictions
            ],
            "errors": [{"video": e.video, "reason": e.reason} for e in self.errors],
        }

    def csv_text(self) -> str:
        """``video,start_s,end_s,rank,class,probability``: one row per (prediction, rank)."""
        buffer = io.StringIO()
        w = csv.writer(buffer, lineterminator="\n")
        w.writerow(["video", "start_s", "end_s", "rank", "class", "probability"])
        for p in self.predictions:
            for rank, c in enumerate(p.top_k, start=1):
                w.writerow([p.video, f"{p.start_s:.3f}", f"{p.end_s:.3f}", rank, c.class_name, f"{c.probability:.6f}"])
        return buffer.getvalue()

    def errors_path(self, path: str | os.PathLike[str]) -> Path | None:
        """Where :meth:`write` puts the failed videos of a ``.csv`` (``NAME.errors.csv``), or None when
        there are none or the format (``.json``) holds them itself."""
        path = Path(path)
        if not self.errors or path.suffix.lower() != ".csv":
            return None
        return path.with_name(path.stem + ".errors.csv")

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write ``.csv`` or ``.json`` (by suffix) atomically. A ``.csv`` cannot hold the failed
        videos in its columns, so they go to ``NAME.errors.csv`` (``video,reason``) beside it;
        a stale one from an earlier run is removed when nothing failed."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            errors_file = self.errors_path(path)
            if errors_file is not None:
                buffer = io.StringIO()
                w = csv.writer(buffer, lineterminator="\n")
                w.writerow(["video", "reason"])
                for e in self.errors:
                    w.writerow([e.video, e.reason])
                atomic_write_text(errors_file, buffer.getvalue())
            else:
                path.with_name(path.stem + ".errors.csv").unlink(missing_ok=True)
            return atomic_write_text(path, self.csv_text())
        if path.suffix.lower() == ".json":
            return atomic_write_text(path, json.dumps(self.to_json_dict(), indent=1) + "\n")
        raise ValueError(f"--out {path}: unknown format {path.suffix!r}; use a .csv or .json file name")

    def table(self) -> str:
        """A readable top-k table (what the CLI prints)."""
        lines = []
        width = max([len(c) for c in self.class_names] + [5])
        for p in self.predictions:
            lines.append(f"{p.video}  [{p.start_s:.2f}-{p.end_s:.2f} s]")
            for rank, c in enumerate(p.top_k, start=1):
                lines.append(f"  {rank:>2}. {c.class_name:<{width}}  {c.probability:.4f}")
        for e in self.errors:
            lines.append(f"{e.video}  FAILED: {e.reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Finding and reading videos
# --------------------------------------------------------------------------------------


def find_videos(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files given, plus the videos (by :data:`VIDEO_EXTENSIONS`, recursively, sorted) of folders given.

    A path that does not exist, or a folder without videos, is an error naming it.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise ValueError("no video given: pass video files or folders of videos")
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise ValueError(f"folder {path} holds no videos (looked for {', '.join(VIDEO_EXTENSIONS)}); "
                                 "pass a folder of videos or the files themselves")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"video {path} does not exist; check the path")
    return out


def count_frames(entry: VideoEntry) -> int:
    """The frame count the container declares (as ``eval`` reads video files), else counted by
    decoding (``.mkv`` / ``.webm`` often declare none); cached per file (path, size, mtime)."""
    stat = Path(entry.path).stat()
    return _count_frames_cached(str(entry.path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _count_frames_cached(path: str, size: int, mtime_ns: int) -> int:
    count = probe_video(path).declared_frames
    if count > 0:
        return count
    count = sum(1 for _ in iter_frames(path))
    if count == 0:
        raise DecodeError("no frame could be decoded")
    return count


def _read(entry: VideoEntry, indices: list[int], *, backend: Backend | None) -> torch.Tensor:
    return read_frames(entry.path, indices, backend=backend)


def _reason(exc: BaseException, path: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    while text.startswith(path + ": "):
        text = text[len(path) + 2:]
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        return "empty file (0 bytes)"  # the decoder's own text ("[Errno 1094995529] Invalid data ...") adds nothing
    if "fewer frames than requested" in text:
        return f"truncated: fewer frames decode than the container declares ({text})"
    return text


class _Views(Dataset):
    """Per video: its views ``(V, C, T, H, W)`` and time span, or the reason it failed.

    Whole-video mode delegates to ``ClipDataset(mode="video")`` — the evaluation's own item;
    window mode covers each window with :func:`sliding_clips` through the same reader and
    transform.
    """

    def __init__(self, clips: ClipDataset, *, window_s: float | None, stride_s: float | None) -> None:
        self.clips = clips
        self.window_s, self.stride_s = window_s, stride_s

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.clips.videos[index]
        try:
            info = probe_video(entry.path)
            if self.window_s is None:
                views = self.clips[index]["clip"]
                num_frames = count_frames(entry)
                fps = info.fps if info.fps > 0 else 1.0
                return {"index": index, "views": [views], "spans": [(0.0, num_frames / fps)], "error": None}
            return {"index": index, **self._windows(entry, info), "error": None}
        except Exception as exc:  # noqa: BLE001 - reported per video, the others go on
            return {"index": index, "views": None, "spans": None, "error": _reason(exc, entry.path)}

    def _windows(self, entry: VideoEntry, info: Any) -> dict[str, Any]:
        ds = self.clips
        num_frames = count_frames(entry)
        fps = info.fps
        if fps <= 0:
            raise DecodeError("the container gives no frame rate: --window needs one")
        window = max(1, int(round(self.window_s * fps)))
        step = max(1, int(round(self.stride_s * fps)))
        window = min(window, num_frames)
        starts = list(range(0, num_frames - window + 1, step)) or [0]
        views, spans = [], []
        for start in starts:
            clips = sliding_clips(window, clip_len=ds.clip_len, stride=ds.stride, short_policy=ds.short_policy)
            per_window = []
            for clip in clips:
                frames = ds.read(entry, [start + i for i in clip])
                out = ds.transform(frames)
                per_window.append(out if out.ndim == 5 else out.unsqueeze(0))
            views.append(torch.cat(per_window))
            spans.append((start / fps, (start + window) / fps))
        return {"views": views, "spans": spans}


def _first(batch: list[Any]) -> Any:
    return batch[0]


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------


def predict(
    videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | ExperimentConfig | None = None,
    model: InferenceModel | None = None,
    top_k: int = 5,
    num_clips: int | None = None,
    num_crops: Literal[1, 3] | None = None,
    window: float | None = None,
    stride: float | None = None,
    backend: Backend | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool = False,
    timings: dict[str, float] | None = None,
) -> PredictResult:
    """Top-k classes of each video (or of each ``window``-second window, every ``stride`` s).

    Args:
        videos: video files and/or folders of videos (searched recursively).
        checkpoint / weights / config: the model, as :func:`load_inference_model` (or an
            already loaded ``model``).
        top_k: classes per prediction; more than the head has is clamped (with a note).
        num_clips, num_crops: the video-level protocol; default: the checkpoint's recipe
            (``eval.num_clips`` x ``eval.num_crops``) or the registry entry's protocol.
        window, stride: seconds; both or neither. A timeline: one prediction per window.
        backend: decoding backend (default: the first available, PyAV).
        num_workers: decoding processes (a DataLoader); the model runs in this process.
        timings: if given, ``data_s`` (waiting for decoded views) and ``model_s`` (forward and
            averaging) are added to it, in seconds: where the time goes.

    A video that cannot be read (missing frames, empty, not a video) lands in
    ``errors`` with its reason; the others are still predicted.
    """
    from .evaluate import predict as forward_views
    from .metrics import _topk_indices, aggregate_video_predictions, softmax

    if (window is None) != (stride is None):
        raise ValueError("--window and --stride go together (seconds): give both, or neither for whole videos")
    if window is not None and not (0 < window < math.inf and 0 < stride < math.inf):  # also nan (a float to argparse)
        raise ValueError(f"--window and --stride must be finite numbers > 0 (seconds), got {window} and {stride}")
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    if num_clips is not None and num_clips < 1:
        raise ValueError(f"--clips must be at least 1, got {num_clips}")
    if num_crops not in (None, 1, 3):
        raise ValueError(f"--crops must be 1 or 3, got {num_crops}")
    paths = find_videos(videos)
    loaded = model if model is not None else load_inference_model(
        checkpoint=checkpoint, weights=weights, config=config, device=device)
    notes = []
    k = top_k
    if top_k > loaded.num_classes:
        k = loaded.num_classes
        notes.append(f"--top-k {top_k} is more than the model's {loaded.num_classes} classes: showing {k}")
        logger.info(notes[-1])
    crops = num_crops if num_crops is not None else loaded.num_crops
    clips = ClipDataset(
        [VideoEntry(str(p), -1, None) for p in paths],
        functools.partial(_read, backend=backend),
        mode="video",
        transform=eval_transform(loaded.normalization, size=loaded.crop_size, crops=crops),
        clip_len=loaded.num_frames,
        stride=loaded.sampling_stride,
        num_clips=num_clips if num_clips is not None else loaded.num_clips,
        count_frames=count_frames,
    )
    items = _Views(clips, window_s=window, stride_s=stride)
    loader = DataLoader(items, batch_size=1, shuffle=False, num_workers=num_workers, collate_fn=_first)
    predictions: list[Prediction] = []
    errors: list[PredictionError] = []
    names = loaded.class_names
    clock = time.perf_counter()
    data_s = model_s = 0.0
    for item in progress_bar(loader, total=len(items), desc="predict", unit="video", enabled=progress):
        started = time.perf_counter()
        data_s += started - clock
        video = str(paths[item["index"]])
        if item["error"] is not None:
            errors.append(PredictionError(video, item["error"]))
            logger.warning("%s: %s", video, item["error"])
            clock = time.perf_counter()
            continue
        for views, (start_s, end_s) in zip(item["views"], item["spans"]):
            probs = _score_views(loaded, views, batch_size=batch_size, forward=forward_views,
                                 aggregate=aggregate_video_predictions, softmax=softmax)
            order = _topk_indices(probs[None], k)[0]
            top = tuple(ClassProbability(names[i], int(i), float(probs[i])) for i in order)
            predictions.append(Prediction(video, float(start_s), float(end_s), top, probs))
        clock = time.perf_counter()
        model_s += clock - started
    if timings is not None:
        timings["data_s"] = timings.get("data_s", 0.0) + data_s
        timings["model_s"] = timings.get("model_s", 0.0) + model_s
    return PredictResult(predictions, errors, list(names), k, notes)


def _score_views(loaded: InferenceModel, views: torch.Tensor, *, batch_size: int, forward: Any, aggregate: Any,
                 softmax: Any) -> np.ndarray:
    """Class probabilities of one video's ``(V, C, T, H, W)`` views, averaged as ``eval`` does."""
    logits = []
    for chunk in views.split(batch_size):
        batch = {"clip": chunk, "label": np.zeros(len(chunk), np.int64), "index": np.zeros(len(chunk), np.int64)}
        logits.append(forward(loaded.model, [batch], device=loaded.device)[2])
    scores = np.concatenate(logits)
    agg = aggregate(scores, np.zeros(len(scores), np.int64), reduce=loaded.reduce)
    probs = agg.scores[0]
    return probs if loaded.reduce == "mean_prob" else softmax(probs[None])[0]


def iter_predictions(result: PredictResult) -> Iterator[tuple[str, float, float, int, str, float]]:
    """Rows ``(video, start_s, end_s, rank, class, probability)`` of ``result``."""
    for p in result.predictions:
        for rank, c in enumerate(p.top_k, start=1):
            yield p.video, p.start_s, p.end_s, rank, c.class_name, c.probability


# --------------------------------------------------------------------------------------
# eval --weights: a foreign or registry checkpoint on a prepared dataset
# --------------------------------------------------------------------------------------


def apply_head_from(loaded: InferenceModel, checkpoint: str | os.PathLike[str]) -> InferenceModel:
    """Replace ``loaded``'s classifier (``fc``) by the one of a training checkpoint (its class
    names too, when it stores them): a backbone evaluated with a head trained elsewhere."""
    from .checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)["model"]
    head = {k.removeprefix("fc."): v for k, v in state.items() if k.startswith("fc.")}
    fc = getattr(loaded.model, "fc", None)
    if fc is None or set(head) != {"weight", "bias"}:
        raise ValueError(f"--head-from {checkpoint}: no fc.weight / fc.bias in it (is it an snl-video checkpoint?)")
    if head["weight"].shape[1] != fc.in_features:
        raise ValueError(f"--head-from {checkpoint}: its head takes {head['weight'].shape[1]} features, the "
                         f"{loaded.architecture} backbone gives {fc.in_features}: use a checkpoint of that architecture")
    new = nn.Linear(fc.in_features, head["weight"].shape[0]).to(loaded.device)
    new.load_state_dict(head)
    loaded.model.fc = new
    stored = load_checkpoint(checkpoint).get("class_names")
    loaded.class_names = list(stored) if stored and len(stored) == new.out_features else _generic_names(new.out_features)
    loaded.source += f" + head of {checkpoint}"
    return loaded


def evaluation_config_for(loaded: InferenceModel, cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with the model's input spec (frames, stride, crop, mean/std) in its data section,
    so the dataset feeds the network what it was trained on; the protocol stays ``cfg``'s."""
    import dataclasses

    n = loaded.normalization
    scale = n.value_scale
    data = dataclasses.replace(
        cfg.data, num_frames=loaded.num_frames, sampling_stride=loaded.sampling_stride, crop_size=loaded.crop_size,
        # (x * value_scale - mean) / std == (x - mean / value_scale) / (std / value_scale)
        mean=tuple(m / scale for m in n.mean), std=tuple(s / scale for s in n.std),
    )
    model = dataclasses.replace(cfg.model, name=loaded.architecture, num_classes=loaded.num_classes)
    return dataclasses.replace(cfg, data=data, model=model, nonlocal_blocks=None, pretrained=None)


def evaluate_weights(
    cfg: ExperimentConfig,
    weights: str | os.PathLike[str],
    *,
    head_from: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    allow_unsafe_pickle: bool = False,
) -> Any:
    """``snl-video eval --weights``: evaluate a registry or foreign checkpoint (no training)
    on ``cfg``'s test split with ``cfg``'s protocol, writing the same outputs as ``eval``.

    The head must have the dataset's class count (a Kinetics head on a Kinetics-class
    dataset), or come from ``head_from`` (a training checkpoint of the same backbone).
    """
    from .builders import resolve_device
    from .evaluate import evaluate_model
    from .metrics import write_evaluation_outputs

    device = resolve_device(cfg.runtime.device)
    loaded = load_inference_model(weights=weights, device=device, allow_unsafe_pickle=allow_unsafe_pickle)
    if head_from is not None:
        apply_head_from(loaded, head_from)
    if loaded.num_classes != cfg.model.num_classes:
        raise ValueError(f"{weights} has a {loaded.num_classes}-class head but the recipe's dataset has "
                         f"{cfg.model.num_classes} classes: pass --head-from CKPT (a checkpoint trained on it), or "
                         "evaluate on a dataset with the head's classes")
    eval_cfg = evaluation_config_for(loaded, cfg)
    show = cfg.runtime.progress if progress is None else progress
    report = evaluate_model(loaded.model, eval_cfg, device=device, progress=show,
                            extra={"weights": str(weights), "head_from": str(head_from) if head_from else None})
    out = Path(out_dir) if out_dir is not None else Path(cfg.runtime.output_dir) / "eval"
    paths = write_evaluation_outputs(report, out)
    logger.info("evaluation outputs: %s", ", ".join(str(p) for p in paths.values()))
    return report
