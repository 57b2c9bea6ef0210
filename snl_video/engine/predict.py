"""``predict``: top-k classes of videos (or of windows along them), and its result types and writers.

:func:`predict` scores video files exactly as ``eval`` scores its video-level protocol —
the same :class:`~snl_video.data.datasets.ClipDataset` (``mode="video"``: ``num_clips``
uniform clips x ``num_crops`` crops through the same transform,
:func:`~snl_video.data.transforms.input_transform` of the model's input spec), the same
batched forward (:func:`snl_video.engine.evaluate.collect_logits`) and the same averaging
(:func:`snl_video.engine.metrics.aggregate_video_predictions`); a test checks that the
scores equal ``eval``'s per-video row. With ``window_seconds``/``stride_seconds`` it gives a
timeline instead: each window is covered by the non-overlapping clips of
:func:`~snl_video.data.sampling.sliding_clips` and scored the same way.

The model comes from :func:`snl_video.engine.loading.load_inference_model`. Bad files in
a folder (empty, truncated, not a video) are reported with their reason in
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
from torch.utils.data import DataLoader, Dataset

from ..config import ExperimentConfig
from ..data.datasets import ClipDataset, VideoEntry
from ..data.decoding import Backend, DecodeError, probe_video
from ..data.sampling import sliding_clips
from ..data.transforms import input_transform
from ..data.video import count_entry_frames, failure_reason, find_videos, read_entry_frames
from ..fileio import atomic_write_text
from .loading import InferenceModel, load_inference_model
from ..progress import progress as progress_bar
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "ClassProbability",
    "Prediction",
    "PredictionError",
    "PredictResult",
    "predict",
    "iter_predictions",
    "score_views",
    "top_k_classes",
]

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
    """Every prediction (per video, or per window with ``window_seconds``) and every failed video."""

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
        raise InvalidValueError(f"--output-file {path}: unknown format {path.suffix!r}; use a .csv or .json file name")

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
                num_frames = count_entry_frames(entry)
                fps = info.fps if info.fps > 0 else 1.0
                return {"index": index, "views": [views], "spans": [(0.0, num_frames / fps)], "error": None}
            return {"index": index, **self._windows(entry, info), "error": None}
        except Exception as exc:  # noqa: BLE001 - reported per video, the others go on
            return {"index": index, "views": None, "spans": None, "error": failure_reason(exc, entry.path)}

    def _windows(self, entry: VideoEntry, info: Any) -> dict[str, Any]:
        ds = self.clips
        num_frames = count_entry_frames(entry)
        fps = info.fps
        if fps <= 0:
            raise DecodeError("the container gives no frame rate: --window-seconds needs one")
        # in frames, capped at the video's length before rounding (a huge window is the whole video)
        window = min(max(1, int(round(min(self.window_s * fps, num_frames)))), num_frames)
        step = max(1, int(round(min(self.stride_s * fps, num_frames))))
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
    window_seconds: float | None = None,
    stride_seconds: float | None = None,
    backend: Backend | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool = False,
    timings: dict[str, float] | None = None,
) -> PredictResult:
    """Top-k classes of each video (or of each ``window_seconds`` window, every ``stride_seconds``).

    Args:
        videos: video files and/or folders of videos (searched recursively).
        checkpoint / weights / config: the model, as :func:`load_inference_model` (or an
            already loaded ``model``).
        top_k: classes per prediction; more than the head has is clamped (with a note).
        num_clips, num_crops: the video-level protocol; default: the checkpoint's recipe
            (``eval.num_clips`` x ``eval.num_crops``) or the registry entry's protocol.
        window_seconds, stride_seconds: both or neither. A timeline: one prediction per window.
        backend: decoding backend (default: the first available, PyAV).
        num_workers: decoding processes (a DataLoader); the model runs in this process.
        timings: if given, ``data_s`` (waiting for decoded views) and ``model_s`` (forward and
            averaging) are added to it, in seconds: where the time goes.

    A video that cannot be read (missing frames, empty, not a video) lands in
    ``errors`` with its reason; the others are still predicted.
    """
    _check_arguments(top_k=top_k, num_clips=num_clips, num_crops=num_crops, window=window_seconds, stride=stride_seconds)
    paths = find_videos(videos)
    loaded = model if model is not None else load_inference_model(
        checkpoint=checkpoint, weights=weights, config=config, device=device)
    notes = []
    k = top_k
    if top_k > loaded.num_classes:
        k = loaded.num_classes
        notes.append(f"--top-k {top_k} is more than the model's {loaded.num_classes} classes: showing {k}")
        logger.info(notes[-1])
    items = _video_views(paths, loaded, num_clips=num_clips, num_crops=num_crops, window=window_seconds, stride=stride_seconds,
                         backend=backend)
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
            probs = score_views(loaded, views, batch_size=batch_size)
            top = tuple(ClassProbability(names[i], int(i), float(probs[i])) for i in top_k_classes(probs, k))
            predictions.append(Prediction(video, float(start_s), float(end_s), top, probs))
        clock = time.perf_counter()
        model_s += clock - started
    if timings is not None:
        timings["data_s"] = timings.get("data_s", 0.0) + data_s
        timings["model_s"] = timings.get("model_s", 0.0) + model_s
    return PredictResult(predictions, errors, list(names), k, notes)


def _check_arguments(*, top_k: int, num_clips: int | None, num_crops: int | None, window: float | None,
                     stride: float | None) -> None:
    """Refuse bad predict arguments before anything loads, naming the flag."""
    if (window is None) != (stride is None):
        raise InvalidValueError("--window-seconds and --stride-seconds go together (seconds): give both, or neither for whole videos")
    if window is not None and not (0 < window < math.inf and 0 < stride < math.inf):  # also nan (a float to argparse)
        raise InvalidValueError(f"--window-seconds and --stride-seconds must be finite numbers > 0 (seconds), got "
                                f"{window} and {stride}")
    if top_k < 1:
        raise InvalidValueError(f"--top-k must be at least 1, got {top_k}")
    if num_clips is not None and num_clips < 1:
        raise InvalidValueError(f"--num-clips must be at least 1, got {num_clips}")
    if num_crops not in (None, 1, 3):
        raise InvalidValueError(f"--num-crops must be 1 or 3, got {num_crops}")


def _video_views(paths: Sequence[Path], loaded: InferenceModel, *, num_clips: int | None,
                 num_crops: Literal[1, 3] | None, window: float | None, stride: float | None,
                 backend: Backend | None) -> _Views:
    """Each video's views, as ``eval``'s video-level dataset makes them (the model's input spec,
    its protocol unless ``num_clips`` / ``num_crops`` say otherwise)."""
    crops = num_crops if num_crops is not None else loaded.num_crops
    clips = ClipDataset(
        [VideoEntry(str(p), -1, None) for p in paths],
        functools.partial(read_entry_frames, backend=backend),
        mode="video",
        transform=input_transform(loaded.input_spec, crops=crops),
        clip_len=loaded.num_frames,
        stride=loaded.sampling_stride,
        num_clips=num_clips if num_clips is not None else loaded.num_clips,
        count_frames=count_entry_frames,
    )
    return _Views(clips, window_s=window, stride_s=stride)


def score_views(loaded: InferenceModel, views: torch.Tensor, *, batch_size: int = 16) -> np.ndarray:
    """Class probabilities of one video's ``(V, C, T, H, W)`` views, averaged as ``eval`` does
    (the same forward, :func:`~snl_video.engine.evaluate.collect_logits`, and the same
    averaging, :func:`~snl_video.engine.metrics.aggregate_video_predictions`)."""
    from .evaluate import collect_logits
    from .metrics import aggregate_video_predictions, softmax

    logits = []
    for chunk in views.split(batch_size):
        batch = {"clip": chunk, "label": np.zeros(len(chunk), np.int64), "index": np.zeros(len(chunk), np.int64)}
        logits.append(collect_logits(loaded.model, [batch], device=loaded.device)[2])
    scores = np.concatenate(logits)
    agg = aggregate_video_predictions(scores, np.zeros(len(scores), np.int64), reduce=loaded.reduce)
    probs = agg.scores[0]
    return probs if loaded.reduce == "mean_prob" else softmax(probs[None])[0]


def iter_predictions(result: PredictResult) -> Iterator[tuple[str, float, float, int, str, float]]:
    """Rows ``(video, start_s, end_s, rank, class, probability)`` of ``result``."""
    for p in result.predictions:
        for rank, c in enumerate(p.top_k, start=1):
            yield p.video, p.start_s, p.end_s, rank, c.class_name, c.probability


def top_k_classes(probabilities: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest of one video's class ``probabilities``, best first; equal
    scores keep head order (as ``eval``'s top-k accuracy ranks them)."""
    return np.argsort(-np.asarray(probabilities), kind="stable")[:k]
