"""The report of one evaluation and the files it is written to.

:func:`compute_metrics_report` turns clip- and view-level scores into a
:class:`MetricsReport` (clip and video top-1/top-5, mean class accuracy, confusion matrix,
per-video predictions) with the pure functions of :mod:`.metrics`;
:func:`write_evaluation_outputs` writes it as ``metrics.json``, CSVs and (through
:mod:`.plots`) the confusion-matrix PNG. Every file is written atomically (a temporary
name in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from ..config import VideoReduce
from ..fileio import atomic_write_text
from .metrics import (ArrayLike, VideoPredictions, aggregate_video_predictions, confusion_matrix, mean_class_accuracy,
                      per_class_accuracy, scores_array, softmax, topk_accuracy, topk_indices)
from .plots import plot_confusion_matrix
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "MetricsReport",
    "compute_metrics_report",
    "write_confusion_csv",
    "write_evaluation_outputs",
    "write_metrics_json",
    "write_per_class_csv",
    "write_video_predictions_csv",
]


@dataclass
class MetricsReport:
    """Everything an evaluation produces; :meth:`to_json_dict` is ``metrics.json``."""

    clip_top1: float
    clip_top5: float
    video_top1: float
    video_top5: float
    mean_class_accuracy: float
    num_classes: int
    num_clips: int
    num_videos: int
    top5_k: int
    videos: VideoPredictions
    confusion: np.ndarray
    per_class: np.ndarray
    class_names: list[str]
    video_names: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    #: The clip-level pass ``(indices, labels, logits)`` it was computed from, when the
    #: evaluation keeps it for reuse (training's last epoch; not part of ``metrics.json``).
    clip_outputs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def to_json_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` content: plain numbers, percentages rounded to 1e-4."""
        out: dict[str, Any] = {
            "clip_top1": round(self.clip_top1, 4),
            "clip_top5": round(self.clip_top5, 4),
            "video_top1": round(self.video_top1, 4),
            "video_top5": round(self.video_top5, 4),
            "mean_class_accuracy": round(self.mean_class_accuracy, 4),
            "num_classes": self.num_classes,
            "num_clips": self.num_clips,
            "num_videos": self.num_videos,
            "num_classes_present": int((~np.isnan(self.per_class)).sum()),
            "top5_k": self.top5_k,
            "video_reduce": self.videos.reduce,
            "views_per_video": sorted({int(n) for n in self.videos.num_views}),
            "per_class_level": "video",
        }
        out.update(self.extra)
        return out


def compute_metrics_report(
    clip_scores: ArrayLike,
    clip_labels: ArrayLike,
    view_scores: ArrayLike,
    view_labels: ArrayLike,
    view_video_ids: Sequence[Hashable] | ArrayLike,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    video_names: Mapping[Any, str] | None = None,  # (keys: the ids of view_video_ids; Mapping is invariant in them)
    reduce: VideoReduce = "mean_prob",
    extra: dict[str, Any] | None = None,
    video_level: bool = True,
) -> MetricsReport:
    """Clip-level and video-level metrics of one evaluation.

    Args:
        clip_scores, clip_labels: one row per test clip of the clip-level protocol (the
            paper's numbers: the centre clip of each video, centre crop).
        view_scores, view_labels, view_video_ids: one row per view (clip x crop) of the
            video-level protocol; views of a video are averaged with ``reduce``.
        num_classes: ``C``; scores must have ``C`` columns.
        class_names: ``C`` names for the CSVs and the plot (default: the indices).
        video_names: video id -> path or name for the per-video CSV (default: the id).
        extra: more entries for ``metrics.json`` (split, checkpoint, ...).
        video_level: ``False`` when the views are the clip-level clips themselves (the
            quick evaluation during training): only the clip numbers are logged, since a
            "video top-1" would just repeat the clip top-1.

    Top-5 uses ``k = min(5, C)`` (recorded as ``top5_k``), so a demo with fewer than five
    classes still gets a value.
    """
    clip = scores_array(clip_scores)
    if clip.shape[1] != num_classes:
        raise ValueError(f"clip_scores have {clip.shape[1]} classes, expected num_classes={num_classes}")
    views = scores_array(view_scores)
    if views.shape[1] != num_classes:
        raise ValueError(f"view_scores have {views.shape[1]} classes, expected num_classes={num_classes}")
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise InvalidValueError(f"class_names has {len(names)} names for num_classes={num_classes}")
    k5 = min(5, num_classes)
    clip_acc = topk_accuracy(clip, clip_labels, ks=(1, k5))
    videos = aggregate_video_predictions(views, view_video_ids, labels=view_labels, reduce=reduce)
    assert videos.labels is not None
    video_acc = topk_accuracy(videos.scores, videos.labels, ks=(1, k5))
    preds = topk_indices(videos.scores, 1)[:, 0]
    cm = confusion_matrix(preds, videos.labels, num_classes)
    per_class = per_class_accuracy(cm)
    report = MetricsReport(
        clip_top1=clip_acc[1],
        clip_top5=clip_acc[k5],
        video_top1=video_acc[1],
        video_top5=video_acc[k5],
        mean_class_accuracy=mean_class_accuracy(cm),
        num_classes=num_classes,
        num_clips=clip.shape[0],
        num_videos=len(videos.video_ids),
        top5_k=k5,
        videos=videos,
        confusion=cm,
        per_class=per_class,
        class_names=names,
        video_names=[str(video_names.get(v, v)) if video_names else str(v) for v in videos.video_ids],
        extra=dict(extra or {}),
    )
    if not video_level:
        logger.info("clip top-1 %.2f top-5 %.2f (%d clips, one per video)", report.clip_top1, report.clip_top5,
                    report.num_clips)
        return report
    logger.info(
        "clip top-1 %.2f top-5 %.2f | video top-1 %.2f top-5 %.2f | mean class %.2f (%d clips, %d videos)",
        report.clip_top1, report.clip_top5, report.video_top1, report.video_top5,
        report.mean_class_accuracy, report.num_clips, report.num_videos,
    )
    return report



# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.4f}"


def write_metrics_json(report: MetricsReport | dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """``metrics.json`` (indent 2, keys in a fixed order)."""
    data = report.to_json_dict() if isinstance(report, MetricsReport) else dict(report)
    return atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_video_predictions_csv(report: MetricsReport, path: str | os.PathLike[str]) -> Path:
    """One row per video: id, name/path, label, prediction, top-5 classes, the label's probability."""
    v = report.videos
    assert v.labels is not None
    k = report.top5_k
    top = topk_indices(v.scores, k)
    # With mean_logit the averaged scores are logits: report probabilities of their softmax.
    probs = v.scores if v.reduce == "mean_prob" else softmax(v.scores)
    names = report.class_names
    rows = []
    for i, vid in enumerate(v.video_ids):
        label, pred = int(v.labels[i]), int(top[i, 0])
        rows.append(
            [
                vid,
                report.video_names[i],
                label,
                names[label],
                pred,
                names[pred],
                int(label == pred),
                " ".join(str(int(c)) for c in top[i]),
                f"{probs[i, label]:.6f}",
                f"{probs[i, pred]:.6f}",
                int(v.num_views[i]),
            ]
        )
    header = [
        "video_id", "video", "label", "label_name", "predicted", "predicted_name", "correct",
        f"top{k}", "prob_label", "prob_predicted", "num_views",
    ]
    return atomic_write_text(path, _csv_text(header, rows))


def write_per_class_csv(report: MetricsReport, path: str | os.PathLike[str]) -> Path:
    """One row per class: index, name, number of test videos, correct, accuracy (empty if absent)."""
    cm = report.confusion
    rows = [
        [c, report.class_names[c], int(cm[c].sum()), int(cm[c, c]), _fmt(float(report.per_class[c]))]
        for c in range(report.num_classes)
    ]
    return atomic_write_text(path, _csv_text(["class", "class_name", "num_videos", "correct", "accuracy"], rows))


def write_confusion_csv(report: MetricsReport, path: str | os.PathLike[str]) -> Path:
    """The confusion matrix with class names: rows = true class, columns = predicted class."""
    names = report.class_names
    rows = [[names[i], *map(int, report.confusion[i])] for i in range(report.num_classes)]
    return atomic_write_text(path, _csv_text(["true \\ predicted", *names], rows))



def write_evaluation_outputs(report: MetricsReport, out_dir: str | os.PathLike[str], *, plot: bool = True) -> dict[str, Path]:
    """Write every evaluation file into ``out_dir``; returns ``{what: path}``.

    ``metrics.json``, ``predictions.csv`` (per video), ``per_class_accuracy.csv``,
    ``confusion_matrix.csv`` and (with ``plot``) ``confusion_matrix.png``.
    """
    out = Path(out_dir)
    paths = {
        "metrics": write_metrics_json(report, out / "metrics.json"),
        "predictions": write_video_predictions_csv(report, out / "predictions.csv"),
        "per_class": write_per_class_csv(report, out / "per_class_accuracy.csv"),
        "confusion_csv": write_confusion_csv(report, out / "confusion_matrix.csv"),
    }
    if plot:
        paths["confusion_png"] = plot_confusion_matrix(report, out / "confusion_matrix.png")
    logger.debug("evaluation outputs in %s", out)  # the callers list every file
    return paths
