"""Evaluation metrics as pure functions over scores and labels (numpy in, numpy out).

Nothing here knows about models or data loaders: the evaluation loop collects clip scores,
labels, dataset indices and video ids, and these functions turn them into the numbers the
paper reports and the files a user reads.

Conventions:

* ``scores`` are ``(N, C)`` logits or probabilities, as a numpy array or a torch tensor
  (any float dtype; computed in float64). Labels are 0-based ints.
* Ranking ties are broken towards the lower class index, the same rule as ``argmax``:
  a sample is correct at ``k`` when fewer than ``k`` classes outrank its label, where class
  ``j`` outranks class ``y`` if ``s_j > s_y``, or ``s_j == s_y`` and ``j < y``. So top-1 is
  exactly "``argmax == label``" and results do not depend on a sort's tie order.
* Accuracies are percentages in ``[0, 100]``.
* Per-class accuracy and the confusion matrix are computed at the *video* level (averaged
  clips x crops); a class with no test video has accuracy NaN (written as an empty cell)
  and is left out of the mean class accuracy, which averages over the classes present in
  the labels.
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
from typing import Any, Callable, Hashable, Literal, Mapping, Sequence

import numpy as np

from ..fileio import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "MetricsReport",
    "VideoPredictions",
    "aggregate_video_predictions",
    "compute_metrics_report",
    "confusion_matrix",
    "deduplicate_by_index",
    "mean_class_accuracy",
    "per_class_accuracy",
    "plot_confusion_matrix",
    "softmax",
    "topk_accuracy",
    "write_confusion_csv",
    "write_evaluation_outputs",
    "write_metrics_json",
    "write_per_class_csv",
    "write_video_predictions_csv",
]

ArrayLike = Any  # numpy array, torch tensor or nested sequence
Reduce = Literal["mean_prob", "mean_logit"]
ScoreKind = Literal["logits", "probs"]


# --------------------------------------------------------------------------------------
# Conversions and checks
# --------------------------------------------------------------------------------------


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; bf16/fp16 go through float32
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _scores(scores: ArrayLike) -> np.ndarray:
    s = _to_numpy(scores).astype(np.float64, copy=False)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (num_samples, num_classes) array, got shape {s.shape}")
    if not np.isfinite(s).all():
        bad = int((~np.isfinite(s)).any(axis=1).sum())
        raise ValueError(f"scores contain NaN or inf in {bad} row(s): the model diverged or the inputs are broken")
    return s


def _labels(labels: ArrayLike, num_samples: int, num_classes: int, *, name: str = "labels") -> np.ndarray:
    y = _to_numpy(labels)
    if y.ndim != 1 or y.shape[0] != num_samples:
        raise ValueError(f"{name} must be a 1-D array of {num_samples} class indices, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must be in [0, {num_classes - 1}], got values from {y.min()} to {y.max()}")
    return y


def softmax(logits: ArrayLike) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits."""
    z = _scores(logits)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each sample's label (ties towards the lower class index)."""
    label_scores = scores[np.arange(len(labels)), labels][:, None]
    classes = np.arange(scores.shape[1])[None, :]
    outrank = (scores > label_scores) | ((scores == label_scores) & (classes < labels[:, None]))
    return outrank.sum(axis=1)


def _topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best classes per row, best first, ties towards the lower index."""
    order = np.argsort(-scores, axis=1, kind="stable")  # stable: equal scores keep index order
    return order[:, :k]


# --------------------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------------------


def topk_accuracy(scores: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent for each ``k`` in ``ks``.

    Args:
        scores: ``(N, C)`` logits or probabilities (the ranking is the same).
        labels: ``(N,)`` 0-based labels.
        ks: the ``k`` values; each must be in ``[1, C]``.

    Returns:
        ``{k: percent}``.
    """
    s = _scores(scores)
    y = _labels(labels, s.shape[0], s.shape[1])
    num_classes = s.shape[1]
    for k in ks:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= num_classes:
            raise ValueError(f"top-k needs 1 <= k <= num_classes={num_classes}, got k={k!r}")
    ranks = _label_ranks(s, y)
    return {int(k): float(np.count_nonzero(ranks < k) * 100.0 / len(ranks)) for k in ks}


def confusion_matrix(preds: ArrayLike, labels: ArrayLike, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts: row = true label, column = predicted class."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    y = _labels(labels, len(_to_numpy(labels)), num_classes)
    p = _labels(preds, len(y), num_classes, name="preds")
    return np.bincount(y * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: ArrayLike) -> np.ndarray:
    """Accuracy (percent) of each true class from a confusion matrix; NaN for a class with no sample."""
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {cm.shape}")
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.diag(cm) / support * 100.0
    acc[support == 0] = np.nan
    return acc


def mean_class_accuracy(confusion: ArrayLike) -> float:
    """Mean of the per-class accuracies over the classes present in the labels (percent).

    Classes without any sample are skipped, not counted as 0: their accuracy is undefined.
    """
    acc = per_class_accuracy(confusion)
    present = ~np.isnan(acc)
    if not present.any():
        raise ValueError("the confusion matrix holds no sample")
    return float(acc[present].mean())


# --------------------------------------------------------------------------------------
# Video-level aggregation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoPredictions:
    """Scores per video, videos in sorted id order.

    ``scores`` are averaged probabilities (``mean_prob``) or averaged logits
    (``mean_logit``); ``num_views`` counts the clips x crops averaged per video.
    """

    video_ids: list[Hashable]
    scores: np.ndarray
    labels: np.ndarray | None
    num_views: np.ndarray
    reduce: Reduce


def aggregate_video_predictions(
    clip_scores: ArrayLike,
    video_ids: Sequence[Hashable] | ArrayLike,
    *,
    labels: ArrayLike | None = None,
    reduce: Reduce = "mean_prob",
    inputs: ScoreKind = "logits",
) -> VideoPredictions:
    """Average the views (clips x crops) of each video.

    ``mean_prob`` (the usual protocol) averages softmax probabilities; ``mean_logit``
    averages the raw scores. With ``inputs="probs"`` the scores are already probabilities
    and are averaged as they are (``mean_prob`` only). Videos come out sorted by id, so the
    order is the same however the views were sharded or shuffled.

    Args:
        clip_scores: ``(N, C)`` scores of the ``N`` views.
        video_ids: ``(N,)`` the video of each view (ints or strings, one type).
        labels: optional ``(N,)`` labels; all views of a video must agree.
    """
    s = _scores(clip_scores)
    if hasattr(video_ids, "detach") or isinstance(video_ids, np.ndarray):
        ids = list(_to_numpy(video_ids).tolist())
    else:  # numpy / torch scalars become Python values: a 0-d tensor hashes by identity
        ids = [v.item() if hasattr(v, "item") else v for v in video_ids]
    if len(ids) != s.shape[0]:
        raise ValueError(f"video_ids has {len(ids)} entries for {s.shape[0]} score rows")
    if inputs not in ("logits", "probs"):
        raise ValueError(f"inputs must be 'logits' or 'probs', got {inputs!r}")
    if reduce == "mean_prob":
        probs = s if inputs == "probs" else softmax(s)
    elif reduce == "mean_logit":
        if inputs == "probs":
            raise ValueError("reduce='mean_logit' needs inputs='logits'; probabilities are averaged with 'mean_prob'")
        probs = s
    else:
        raise ValueError(f"reduce must be 'mean_prob' or 'mean_logit', got {reduce!r}")
    try:
        unique = sorted(set(ids))
    except TypeError as exc:
        raise ValueError(f"video_ids must all be of one sortable type (ints or strings): {exc}") from None
    position = {vid: i for i, vid in enumerate(unique)}
    rows = np.fromiter((position[v] for v in ids), dtype=np.int64, count=len(ids))
    counts = np.bincount(rows, minlength=len(unique))
    sums = np.zeros((len(unique), s.shape[1]))
    np.add.at(sums, rows, probs)
    video_labels = None
    if labels is not None:
        y = _labels(labels, s.shape[0], s.shape[1])
        video_labels = np.full(len(unique), -1, dtype=np.int64)
        video_labels[rows] = y
        if not np.array_equal(video_labels[rows], y):
            bad = sorted({unique[r] for r, lab in zip(rows, y) if video_labels[r] != lab}, key=str)[:5]
            raise ValueError(f"views of one video carry different labels (videos {bad}); check the dataset's video ids")
    return VideoPredictions(unique, sums / counts[:, None], video_labels, counts, reduce)


# --------------------------------------------------------------------------------------
# DDP: padding duplicates
# --------------------------------------------------------------------------------------


def deduplicate_by_index(indices: ArrayLike, *arrays: ArrayLike) -> tuple[Any, ...]:
    """Drop the repeated samples a ``DistributedSampler`` adds to even out the shards.

    The sampler pads the index list with copies of its first indices so every rank gets
    the same number of samples; after gathering every rank's outputs, those copies would
    count some test clips twice. Keep the first occurrence of each dataset index, and sort
    by index so the result is the same for any number of processes.

    Args:
        indices: ``(N,)`` dataset index of each gathered sample.
        *arrays: arrays or tensors whose first dimension is ``N`` (scores, labels, ...).

    Returns:
        ``(unique_indices, *arrays)`` restricted to the kept samples, each of its input
        type (a torch tensor stays a tensor, on its device).
    """
    idx = _to_numpy(indices)
    if idx.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {idx.shape}")
    for i, a in enumerate(arrays):
        if len(a) != len(idx):
            raise ValueError(f"array {i} has {len(a)} rows for {len(idx)} indices")
    _, first = np.unique(idx, return_index=True)  # sorted unique values, first position of each
    dropped = len(idx) - len(first)
    if dropped:
        logger.debug("dropped %d duplicate sample(s) (distributed sampler padding)", dropped)
    return tuple(_take(a, first) for a in (indices, *arrays))


def _take(a: ArrayLike, rows: np.ndarray) -> Any:
    if hasattr(a, "detach"):
        import torch

        return a[torch.as_tensor(rows, device=a.device)]
    if isinstance(a, np.ndarray):
        return a[rows]
    return [a[int(r)] for r in rows]


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------


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
    video_names: Mapping[Hashable, str] | None = None,
    reduce: Reduce = "mean_prob",
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
    clip = _scores(clip_scores)
    if clip.shape[1] != num_classes:
        raise ValueError(f"clip_scores have {clip.shape[1]} classes, expected num_classes={num_classes}")
    views = _scores(view_scores)
    if views.shape[1] != num_classes:
        raise ValueError(f"view_scores have {views.shape[1]} classes, expected num_classes={num_classes}")
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for num_classes={num_classes}")
    k5 = min(5, num_classes)
    clip_acc = topk_accuracy(clip, clip_labels, ks=(1, k5))
    videos = aggregate_video_predictions(views, view_video_ids, labels=view_labels, reduce=reduce)
    assert videos.labels is not None
    video_acc = topk_accuracy(videos.scores, videos.labels, ks=(1, k5))
    preds = _topk_indices(videos.scores, 1)[:, 0]
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
# Writers (atomic: a temporary name in the same folder, then os.replace)
# --------------------------------------------------------------------------------------


def _atomic_write_bytes(path: str | os.PathLike[str], write: Callable[[Any], None]) -> Path:
    return atomic_write(path, write)


def _atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_text(path, text)


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
    return _atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_video_predictions_csv(report: MetricsReport, path: str | os.PathLike[str]) -> Path:
    """One row per video: id, name/path, label, prediction, top-5 classes, the label's probability."""
    v = report.videos
    assert v.labels is not None
    k = report.top5_k
    top = _topk_indices(v.scores, k)
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
    return _atomic_write_text(path, _csv_text(header, rows))


def write_per_class_csv(report: MetricsReport, path: str | os.PathLike[str]) -> Path:
    """One row per class: index, name, number of test videos, correct, accuracy (empty if absent)."""
    cm = report.confusion
    rows = [
        [c, report.class_names[c], int(cm[c].sum()), int(cm[c, c]), _fmt(float(report.per_class[c]))]
        for c in range(report.num_classes)
    ]
    return _atomic_write_text(path, _csv_text(["class", "class_name", "num_videos", "correct", "accuracy"], rows))


def write_confusion_csv(report: MetricsReport, path: str | os.PathLike[str]) -> Path:
    """The confusion matrix with class names: rows = true class, columns = predicted class."""
    names = report.class_names
    rows = [[names[i], *map(int, report.confusion[i])] for i in range(report.num_classes)]
    return _atomic_write_text(path, _csv_text(["true \\ predicted", *names], rows))


def plot_confusion_matrix(report: MetricsReport, path: str | os.PathLike[str], *, normalize: bool = True) -> Path:
    """A PNG of the confusion matrix, rows normalised to recall when ``normalize``.

    Only the classes present (a true label or a prediction of some video) are drawn, so a
    6-class subset scored by a 101-class head is a legible 6x6 figure. Sized with the class
    count (about 0.16 inch per class, 150 dpi past 20 classes) so all 101 UCF-101 names stay
    readable as tick labels; counts are written in the cells only for up to 20 classes. The
    title names the run and the checkpoint (also the PNG's ``Title`` metadata).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    shown_classes = confusion_classes_shown(report)
    cm = report.confusion.astype(np.float64)[np.ix_(shown_classes, shown_classes)]
    names = [report.class_names[c] for c in shown_classes]
    n = len(shown_classes)
    if normalize:
        support = cm.sum(axis=1, keepdims=True)
        shown = np.divide(cm, support, out=np.zeros_like(cm), where=support > 0)
    else:
        shown = cm
    side = max(6.0, 0.16 * n + 3.0)
    font = 10 if n <= 20 else 6 if n <= 120 else 4
    # 150 dpi for many classes: 6-point names are then ~12 px high, legible when zoomed.
    fig, ax = plt.subplots(figsize=(side, side), dpi=100 if n <= 20 else 150)
    try:
        image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, interpolation="nearest")
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(names, rotation=90, fontsize=font)
        ax.set_yticklabels(names, fontsize=font)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        title = f"video top-1 {report.video_top1:.2f}%, mean class {report.mean_class_accuracy:.2f}%"
        subtitle = f"{report.num_videos} videos" + (", rows normalised to recall" if normalize else ", counts")
        if n < report.num_classes:
            subtitle += f", the {n} of {report.num_classes} classes present"
        heading = confusion_title(report)
        ax.set_title(f"{heading}\n{title}\n{subtitle}" if heading else f"{title}\n{subtitle}")
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if cm[i, j]:
                        ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                                color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black")
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
        fig.tight_layout()
        metadata = {"Title": heading or title}
        return _atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", metadata=metadata))
    finally:
        plt.close(fig)


def confusion_classes_shown(report: MetricsReport) -> list[int]:
    """Classes the confusion PNG draws: those with a true label or a prediction (all when none)."""
    present = np.flatnonzero(report.confusion.sum(axis=0) + report.confusion.sum(axis=1) > 0)
    return [int(c) for c in present] if len(present) else list(range(report.num_classes))


def confusion_title(report: MetricsReport) -> str:
    """``run tiny, checkpoint last.pt (epoch 3)`` from the report's extra entries ('' when absent)."""
    parts = []
    if report.extra.get("run"):
        parts.append(f"run {report.extra['run']}")
    if report.extra.get("checkpoint"):
        epoch = report.extra.get("epoch")
        parts.append(f"checkpoint {Path(str(report.extra['checkpoint'])).name}" + (f" (epoch {epoch})" if epoch else ""))
    return ", ".join(parts)


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
