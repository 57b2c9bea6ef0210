"""``predict``: top-k classes of videos (or of windows along them), and its result types and writers.

:func:`predict` scores video files exactly as ``eval`` scores its video-level protocol —
the same :class:`~snl_video.data.datasets.ClipDataset` (``mode="video"``: ``num_clips``
uniform clips x ``num_crops`` crops through the same transform,
:meth:`~snl_video.engine.loading.InferenceModel.transform`: the model's input spec, after
the resize ``prepare`` applied when the model was trained on prepared frames), the same
batched forward (:func:`snl_video.engine.evaluate.collect_logits`) and the same averaging
(:func:`snl_video.engine.metrics.aggregate_video_predictions`); a test checks that the
scores equal ``eval``'s per-video row. With ``window_seconds``/``stride_seconds`` it gives a
timeline instead: each window is covered by the non-overlapping clips of
:func:`~snl_video.data.sampling.sliding_clips` and scored the same way.

Each video is decoded once (:func:`~snl_video.data.video.stream_clips`): a timeline keeps
only the frames the windows still to come need, scores views in batches of
``batch_size`` as they become ready and hands each window on as soon as its clips are
scored, so memory is bounded by the window and the batch, not the length of the video.
With ``output_file`` the rows are written as they come to ``NAME.partial.csv|json`` beside it
(an interrupted run keeps what it did there), and ``NAME`` is replaced atomically, complete,
at the end: a file from an earlier run is never left half-overwritten.

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
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


from ..config import ExperimentConfig
from ..data.datasets import ClipDataset, VideoEntry
from ..data.decoding import Backend, DecodeError, probe_video, timestamp_rate
from ..data.sampling import clip_span, sliding_clips
from ..data.video import (count_entry_frames, count_frames, failure_reason, find_videos, read_entry_clips,
                          read_entry_frames, stream_clips)
from ..fileio import atomic_write_text
from .loading import InferenceModel, load_inference_model
from .precision import Precision
from .runtime import flush_denormal
from ..progress import progress as progress_bar
from ..errors import Interrupted, InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "ClassProbability",
    "Prediction",
    "PredictionError",
    "PredictResult",
    "predict",
    "partial_path",
    "iter_predictions",
    "score_views",
    "view_logits",
    "probabilities_of_views",
    "window_clips",
    "PredictionWriter",
    "top_k_classes",
    "short_video_note",
    "short_window_note",
    "seconds_rate",
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
        w.writerow(CSV_HEADER)
        for p in self.predictions:
            w.writerows(csv_rows(p))
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


#: The columns of a predictions ``.csv``.
CSV_HEADER = ("video", "start_s", "end_s", "rank", "class", "probability")


def csv_rows(p: Prediction) -> list[list[Any]]:
    """The ``.csv`` rows of one prediction (one per rank)."""
    return [[p.video, f"{p.start_s:.3f}", f"{p.end_s:.3f}", rank, c.class_name, f"{c.probability:.6f}"]
            for rank, c in enumerate(p.top_k, start=1)]


def partial_path(output_file: str | os.PathLike[str]) -> Path:
    """Where :func:`predict` streams the rows of ``output_file`` while it runs:
    ``NAME.partial.csv`` / ``NAME.partial.json`` beside it (removed when ``NAME`` is written)."""
    path = Path(output_file)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class PredictionWriter:
    """Results written as they come, so an interrupted run keeps what it had done
    (:func:`predict` points it at :func:`partial_path`, not at the final file).

    ``.csv``: the header at once, then each prediction's rows appended and flushed as it is
    added. ``.json``: the document so far rewritten atomically at most every
    ``json_every_s`` seconds (a reader never sees a half-written file). Either way
    :meth:`PredictResult.write` writes the complete file at the end (identical rows).
    """

    #: Default seconds between two rewrites of a ``.json`` while predicting.
    JSON_EVERY_S = 2.0

    def __init__(self, path: str | os.PathLike[str], *, class_names: list[str], top_k: int,
                 json_every_s: float | None = None) -> None:
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in (".csv", ".json"):
            raise InvalidValueError(f"--output-file {self.path}: unknown format {self.path.suffix!r}; use a .csv or .json file name")
        self.partial = PredictResult([], [], list(class_names), top_k)
        self.json_every_s = self.JSON_EVERY_S if json_every_s is None else json_every_s
        self._last_json = 0.0
        self._file: Any = None
        if self.kind == ".csv":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._csv = csv.writer(self._file, lineterminator="\n")
            self._csv.writerow(CSV_HEADER)
            self._file.flush()

    def add(self, prediction: Prediction) -> None:
        """Write one prediction (a video, or a window of one)."""
        self.partial.predictions.append(prediction)
        if self._file is not None:
            self._csv.writerows(csv_rows(prediction))
            self._file.flush()
        else:
            self._json(force=False)

    def add_error(self, error: PredictionError) -> None:
        """Record a failed video (a ``.csv`` lists them in ``NAME.errors.csv`` at the end)."""
        self.partial.errors.append(error)
        if self._file is None:
            self._json(force=False)

    def _json(self, *, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._last_json >= self.json_every_s:
            atomic_write_text(self.path, json.dumps(self.partial.to_json_dict(), indent=1) + "\n")
            self._last_json = now

    def close(self) -> None:
        """Close the ``.csv`` (the final file comes from :meth:`PredictResult.write`)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class _Views(Dataset):
    """Per video: its views ``(V, C, T, H, W)`` and time span, or the reason it failed.

    Delegates to ``ClipDataset(mode="video")``: the evaluation's own item (one decoding
    pass per video through its ``read_clips``).
    """

    def __init__(self, clips: ClipDataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.clips.videos[index]
        try:
            info = probe_video(entry.path)
            views = self.clips[index]["clip"]
            video_frames = count_entry_frames(entry)
            fps, rate_note = seconds_rate(entry.path, info.fps, timeline=False)
            fps = fps if fps > 0 else 1.0
            return {"index": index, "views": [views], "spans": [(0.0, video_frames / fps)], "error": None,
                    "video_frames": video_frames, "note": rate_note}
        except Exception as exc:  # noqa: BLE001 - reported per video, the others go on
            return {"index": index, "views": None, "spans": None, "error": failure_reason(exc, entry.path)}


def window_clips(video_frames: int, fps: float, *, window_s: float, stride_s: float, num_frames: int,
                 sampling_stride: int) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """The windows of a timeline and the clips covering each: ``(windows, clips)``.

    ``windows`` are ``(first_frame, frames)``, one every ``stride_s`` seconds (at least one);
    each is covered by the clips of :func:`~snl_video.data.sampling.sliding_clips` over its
    frames, ``len(clips) == len(windows) * clips_per_window``, window after window.
    """
    if fps <= 0:
        raise DecodeError("the container gives no frame rate: --window-seconds needs one")
    # in frames, capped at the video's length before rounding (a huge window is the whole video)
    window = min(max(1, int(round(min(window_s * fps, video_frames)))), video_frames)
    step = max(1, int(round(min(stride_s * fps, video_frames))))
    starts = list(range(0, video_frames - window + 1, step)) or [0]
    relative = sliding_clips(window, num_frames=num_frames, stride=sampling_stride)
    clips = [[start + i for i in clip] for start in starts for clip in relative]
    return [(start, window) for start in starts], clips


class _WindowScorer:
    """Scores the clips of a timeline in batches as they are decoded, and gives each window's
    probabilities once all its clips are scored (windows in order)."""

    def __init__(self, loaded: InferenceModel, *, clips_per_window: int, batch_size: int) -> None:
        self.loaded, self.per_window, self.batch_size = loaded, clips_per_window, batch_size
        self.queue: list[tuple[int, torch.Tensor]] = []  # (clip index, views (V, C, T, H, W))
        self.logits: dict[int, np.ndarray] = {}  # clip index -> (V, classes)
        self.next_window = 0

    def add(self, clip_index: int, views: torch.Tensor) -> Iterator[tuple[int, np.ndarray]]:
        self.queue.append((clip_index, views))
        if sum(len(v) for _, v in self.queue) >= self.batch_size:
            yield from self.flush()

    def flush(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.queue:
            stacked = torch.cat([v for _, v in self.queue])
            logits = view_logits(self.loaded, stacked, batch_size=self.batch_size)
            row = 0
            for clip_index, views in self.queue:
                self.logits[clip_index] = logits[row:row + len(views)]
                row += len(views)
            self.queue = []
        while True:
            first = self.next_window * self.per_window
            ids = range(first, first + self.per_window)
            if not all(i in self.logits for i in ids):
                return
            scores = np.concatenate([self.logits.pop(i) for i in ids])
            yield self.next_window, probabilities_of_views(self.loaded, scores)
            self.next_window += 1


def _stream_windows(path: Path, loaded: InferenceModel, transform: Any, *, window_s: float, stride_s: float,
                    backend: Backend | None, batch_size: int,
                    note: Callable[[str], None] | None = None) -> Iterator[tuple[float, float, np.ndarray]]:
    """``(start_s, end_s, probabilities)`` of each window of the video at ``path``, in order,
    from one decoding pass (frames kept: those of the windows not yet complete). A video
    shorter than one clip or one window is said to ``note`` (:func:`short_window_note`)."""
    info = probe_video(path)
    video_frames = count_frames(path)
    fps, rate_note = seconds_rate(path, info.fps, timeline=True)
    if rate_note is not None and note is not None:
        note(rate_note)
    short = short_window_note(str(path), video_frames, fps, window_s=window_s, num_frames=loaded.num_frames,
                              stride=loaded.sampling_stride)
    if short is not None and note is not None:
        note(short)
    windows, clips = window_clips(video_frames, fps, window_s=window_s, stride_s=stride_s,
                                  num_frames=loaded.num_frames, sampling_stride=loaded.sampling_stride)
    scorer = _WindowScorer(loaded, clips_per_window=len(clips) // len(windows), batch_size=batch_size)

    def spans(ready: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[float, float, np.ndarray]]:
        for w, probs in ready:
            start, frames = windows[w]
            yield start / fps, (start + frames) / fps, probs

    for clip_index, frames in stream_clips(path, clips, backend=backend):
        out = transform(frames)
        yield from spans(scorer.add(clip_index, out if out.ndim == 5 else out.unsqueeze(0)))
    yield from spans(scorer.flush())


def seconds_rate(path: str | os.PathLike[str], declared_fps: float, *, timeline: bool) -> tuple[float, str | None]:
    """The frames per second that turn frame indices into seconds for the video at ``path``,
    and a note for the user when it is not simply the container's declared rate.

    The declared rate (``probe_video().fps``) when the packet timestamps agree with it (within
    1%); else the rate the timestamps give on average (:func:`~snl_video.data.decoding.timestamp_rate`),
    so a video whose container declares 25 fps but whose frames last 4 s is not said to end
    at 2.4 s. A variable frame rate (uneven gaps) is said too when ``timeline``: windows are
    counted in frames, so their times are right on average only.
    """
    rate = timestamp_rate(path)
    if rate is None:
        return declared_fps, None
    fps, notes = declared_fps, []
    if declared_fps <= 0 or abs(rate.fps - declared_fps) > 0.01 * declared_fps:
        fps = rate.fps
        declared = f"declares {declared_fps:g} fps" if declared_fps > 0 else "declares no frame rate"
        notes.append(f"{path}: its container {declared} but its frames' timestamps give {rate.fps:.4g} fps on average "
                     f"({rate.duration_s:.2f} s): times use the timestamps' rate")
    if timeline and not rate.regular:
        notes.append(f"{path} has a variable frame rate (uneven gaps between frames): windows are counted in frames at "
                     f"its average {fps:.4g} fps, so their times are approximate")
    return fps, "; ".join(notes) or None


def short_video_note(video: str, video_frames: int, *, num_frames: int, stride: int) -> str | None:
    """The note for a video shorter than one clip (how its clip was padded), or None when it is long enough."""
    span = clip_span(num_frames, stride)
    if video_frames >= span:
        return None
    return (f"{video} has {video_frames} frame(s), shorter than one clip ({span} frames: {num_frames} every {stride}): "
            "its frames were repeated in a loop to fill the clip, so its prediction rests on little motion")


def short_window_note(video: str, video_frames: int, fps: float, *, window_s: float, num_frames: int,
                      stride: int) -> str | None:
    """The note for a timeline (``--window-seconds``) over a video too short for it: shorter
    than one clip (:func:`short_video_note`, as whole-video predict says), else shorter than
    one window (its single window is the whole video); None when the video is long enough."""
    clip_note = short_video_note(video, video_frames, num_frames=num_frames, stride=stride)
    if clip_note is not None:
        return clip_note
    if fps > 0 and video_frames < window_s * fps:
        return (f"{video} lasts {video_frames / fps:.2f} s ({video_frames} frames), shorter than one "
                f"--window-seconds {window_s:g} window: its one window is the whole video")
    return None


def _first(batch: list[Any]) -> Any:
    return batch[0]


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------


class _Collected:
    """What a predict run gathers as it goes: each prediction (streamed to the ``writer`` too), each
    failed video (logged, and streamed), and the notes the caller shows the user once."""

    def __init__(self, class_names: Sequence[str], k: int, writer: PredictionWriter | None) -> None:
        self.class_names = class_names
        self.k = k
        self.writer = writer
        self.predictions: list[Prediction] = []
        self.errors: list[PredictionError] = []
        self.notes: list[str] = []

    def emit(self, video: str, start_s: float, end_s: float, probs: np.ndarray) -> None:
        """Keep the prediction of one video (or window) with its top-k classes."""
        top = tuple(ClassProbability(self.class_names[i], int(i), float(probs[i]))
                    for i in top_k_classes(probs, self.k))
        self.predictions.append(Prediction(video, float(start_s), float(end_s), top, probs))
        if self.writer is not None:
            self.writer.add(self.predictions[-1])

    def note(self, text: str) -> None:
        """Keep something the user should know (a clamped --top-k, a video shorter than a clip)."""
        self.notes.append(text)
        logger.debug(text)  # shown by the caller from result.notes (the CLI prints each once): INFO would repeat it

    def fail(self, video: str, reason: str) -> None:
        """Keep (and log) a video that could not be predicted, with its reason."""
        self.errors.append(PredictionError(video, reason))
        logger.warning("%s: %s", video, reason)
        if self.writer is not None:
            self.writer.add_error(self.errors[-1])


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
    output_file: str | os.PathLike[str] | None = None,
    precision: Precision | None = None,
    crop_size: int | None = None,
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
            averaging) are added to it, in seconds: where the time goes (a timeline decodes
            and scores interleaved: all of it is ``model_s``).
        output_file: a ``.csv`` or ``.json`` file, written atomically complete at the end; the
            results stream to :func:`partial_path` (``NAME.partial.csv|json``) as each video (or
            window) finishes, so an interrupted run keeps them there and leaves ``output_file``
            as it was (:class:`PredictionWriter`).
        crop_size: a test crop other than the model's own (short side resized to it, then
            cropped; :meth:`InferenceModel.set_crop_size`, which refuses a size the model
            cannot take); applied to a given ``model`` too.
        precision: ``fp32`` or ``bf16`` autocast (:meth:`InferenceModel.set_precision`;
            refused on a CPU without native bf16); None keeps a given ``model``'s setting (fp32 when
            loaded here).

    A video that cannot be read (missing frames, empty, not a video) lands in
    ``errors`` with its reason; the others are still predicted.
    """
    _check_arguments(top_k=top_k, num_clips=num_clips, num_crops=num_crops, window=window_seconds, stride=stride_seconds)
    paths = find_videos(videos)
    loaded = model if model is not None else load_inference_model(
        checkpoint=checkpoint, weights=weights, config=config, device=device)
    if crop_size is not None:
        loaded.set_crop_size(crop_size)
    if precision is not None or model is None:
        loaded.set_precision(precision or "fp32")
    k = min(top_k, loaded.num_classes)
    writer = (PredictionWriter(partial_path(output_file), class_names=list(loaded.class_names), top_k=k)
              if output_file is not None else None)
    collected = _Collected(loaded.class_names, k, writer)
    if k < top_k:
        collected.note(f"--top-k {top_k} is more than the model's {loaded.num_classes} classes: showing {k}")
    try:
        with flush_denormal(loaded.flush_denormal):  # on every CPU thread while predicting, restored after
            _predict_all(paths, loaded, collected.emit, collected.fail, collected.note, window=window_seconds,
                         stride=stride_seconds, num_clips=num_clips, num_crops=num_crops, backend=backend,
                         batch_size=batch_size, num_workers=num_workers, progress=progress, timings=timings)
    except KeyboardInterrupt as exc:
        if writer is None:
            raise
        writer.close()
        raise Interrupted(f"the {len(collected.predictions)} prediction(s) made so far are in {writer.path}; "
                          f"{output_file} was not changed") from exc
    finally:
        if writer is not None:
            writer.close()
    result = PredictResult(collected.predictions, collected.errors, list(loaded.class_names), k, collected.notes)
    if output_file is not None and writer is not None:
        _write_final(result, Path(output_file), writer.path)
    return result


def _write_final(result: PredictResult, output_file: Path, partial: Path) -> None:
    """Replace ``output_file`` atomically with the complete result (the streamed rows were the
    same), then drop the partial file. When nothing could be predicted, a file already there
    (an earlier run's) is kept rather than replaced by an empty table."""
    if not result.predictions and result.errors and output_file.exists():
        result.notes.append(f"nothing was predicted: {output_file} from before was left as it was")
    else:
        result.write(output_file)
    partial.unlink(missing_ok=True)


def _predict_all(paths: Sequence[Path], loaded: InferenceModel, emit: Any, fail: Any, note: Any, *, window: float | None,
                 stride: float | None, num_clips: int | None, num_crops: Literal[1, 3] | None,
                 backend: Backend | None, batch_size: int, num_workers: int, progress: bool,
                 timings: dict[str, float] | None) -> None:
    """Score every video (or window) and hand each to ``emit(video, start_s, end_s, probs)``,
    each failed video to ``fail(video, reason)``, and what the user should know (a video shorter
    than a clip) to ``note(text)``."""
    clock = time.perf_counter()
    data_s = model_s = 0.0
    if window is not None:
        assert stride is not None  # --window-seconds comes with --stride-seconds (_check_arguments)
        # one decoding pass per video in this process, windows scored in batches as they fill
        if num_workers > 0:
            logger.info("--num-workers %d is not used with --window-seconds: each video is decoded once, in this process, "
                        "interleaved with its forwards", num_workers)
        transform = loaded.transform(crops=num_crops)
        for path in progress_bar(paths, total=len(paths), desc="predict", unit="video", enabled=progress):
            try:
                for start_s, end_s, probs in _stream_windows(path, loaded, transform, window_s=window,
                                                             stride_s=stride, backend=backend,
                                                             batch_size=batch_size, note=note):
                    emit(str(path), start_s, end_s, probs)
            except Exception as exc:  # noqa: BLE001 - reported per video, the others go on
                fail(str(path), failure_reason(exc, path))
        model_s = time.perf_counter() - clock  # decoding and forwards interleave: not split
    else:
        items = _video_views(paths, loaded, num_clips=num_clips, num_crops=num_crops, backend=backend)
        loader = DataLoader(items, batch_size=1, shuffle=False, num_workers=num_workers, collate_fn=_first)
        for item in progress_bar(loader, total=len(items), desc="predict", unit="video", enabled=progress):
            started = time.perf_counter()
            data_s += started - clock
            video = str(paths[item["index"]])
            if item["error"] is not None:
                fail(video, item["error"])
                clock = time.perf_counter()
                continue
            if item.get("note") is not None:
                note(item["note"])
            short = short_video_note(video, item["video_frames"], num_frames=loaded.num_frames,
                                     stride=loaded.sampling_stride)
            if short is not None:
                note(short)
            for views, (start_s, end_s) in zip(item["views"], item["spans"]):
                emit(video, start_s, end_s, score_views(loaded, views, batch_size=batch_size))
            clock = time.perf_counter()
            model_s += clock - started
    if timings is not None:
        timings["data_s"] = timings.get("data_s", 0.0) + data_s
        timings["model_s"] = timings.get("model_s", 0.0) + model_s


def _check_arguments(*, top_k: int, num_clips: int | None, num_crops: int | None, window: float | None,
                     stride: float | None) -> None:
    """Refuse bad predict arguments before anything loads, naming the flag."""
    if (window is None) != (stride is None):
        raise InvalidValueError("--window-seconds and --stride-seconds go together (seconds): give both, or neither for whole videos")
    # (both or neither: checked above; the comparisons also refuse nan, a float to argparse)
    if window is not None and stride is not None and not (0 < window < math.inf and 0 < stride < math.inf):
        raise InvalidValueError(f"--window-seconds and --stride-seconds must be finite numbers > 0 (seconds), got "
                                f"{window} and {stride}")
    if top_k < 1:
        raise InvalidValueError(f"--top-k must be at least 1, got {top_k}")
    if num_clips is not None and num_clips < 1:
        raise InvalidValueError(f"--num-clips must be at least 1, got {num_clips}")
    if num_crops not in (None, 1, 3):
        raise InvalidValueError(f"--num-crops must be 1 or 3, got {num_crops}")


def _video_views(paths: Sequence[Path], loaded: InferenceModel, *, num_clips: int | None,
                 num_crops: Literal[1, 3] | None, backend: Backend | None) -> _Views:
    """Each video's views, as ``eval``'s video-level dataset makes them (the model's input spec,
    its protocol unless ``num_clips`` / ``num_crops`` say otherwise)."""
    crops = num_crops if num_crops is not None else loaded.num_crops
    clips = ClipDataset(
        [VideoEntry(str(p), -1, None) for p in paths],
        functools.partial(read_entry_frames, backend=backend),
        mode="video",
        transform=loaded.transform(crops=crops),
        num_frames=loaded.num_frames,
        stride=loaded.sampling_stride,
        num_clips=num_clips if num_clips is not None else loaded.num_clips,
        count_frames=count_entry_frames,
        read_clips=functools.partial(read_entry_clips, backend=backend),
    )
    return _Views(clips)


def view_logits(loaded: InferenceModel, views: torch.Tensor, *, batch_size: int = 16) -> np.ndarray:
    """Logits ``(V, classes)`` of ``(V, C, T, H, W)`` views, ``batch_size`` views per forward,
    through ``eval``'s forward (:func:`~snl_video.engine.evaluate.collect_logits`)."""
    from .evaluate import collect_logits

    logits = []
    for chunk in views.split(batch_size):
        batch = {"clip": chunk, "label": np.zeros(len(chunk), np.int64), "index": np.zeros(len(chunk), np.int64)}
        logits.append(collect_logits(loaded.model, [batch], device=loaded.device, amp_dtype=loaded.amp_dtype,
                                     channels_last=loaded.channels_last)[2])
    return np.concatenate(logits)


def probabilities_of_views(loaded: InferenceModel, logits: np.ndarray) -> np.ndarray:
    """Class probabilities of one video (or window) from its views' logits, averaged as
    ``eval`` does (:func:`~snl_video.engine.metrics.aggregate_video_predictions`, the
    model's ``reduce``)."""
    from .metrics import aggregate_video_predictions, softmax

    agg = aggregate_video_predictions(logits, np.zeros(len(logits), np.int64), reduce=loaded.reduce)
    probs = agg.scores[0]
    return probs if loaded.reduce == "mean_prob" else softmax(probs[None])[0]


def score_views(loaded: InferenceModel, views: torch.Tensor, *, batch_size: int = 16) -> np.ndarray:
    """Class probabilities of one video's ``(V, C, T, H, W)`` views, averaged as ``eval`` does
    (:func:`view_logits`, then :func:`probabilities_of_views`)."""
    return probabilities_of_views(loaded, view_logits(loaded, views, batch_size=batch_size))


def iter_predictions(result: PredictResult) -> Iterator[tuple[str, float, float, int, str, float]]:
    """Rows ``(video, start_s, end_s, rank, class, probability)`` of ``result``."""
    for p in result.predictions:
        for rank, c in enumerate(p.top_k, start=1):
            yield p.video, p.start_s, p.end_s, rank, c.class_name, c.probability


def top_k_classes(probabilities: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest of one video's class ``probabilities``, best first; equal
    scores keep head order (as ``eval``'s top-k accuracy ranks them)."""
    return np.argsort(-np.asarray(probabilities), kind="stable")[:k]
