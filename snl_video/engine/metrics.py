"""Evaluation metrics as pure functions over scores and labels (numpy in, numpy out).

Nothing here knows about models or data loaders: the evaluation loop collects clip scores,
labels, dataset indices and video ids, and these functions turn them into the numbers the
paper reports. Reports built from them and their files live in :mod:`.reports`, the
confusion-matrix figure in :mod:`.plots`.

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

import logging
from dataclasses import dataclass
from typing import Any, Hashable, Literal, Sequence

import numpy as np

from ..config import VideoReduce
from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "VideoPredictions",
    "aggregate_video_predictions",
    "confusion_matrix",
    "deduplicate_by_index",
    "mean_class_accuracy",
    "per_class_accuracy",
    "scores_array",
    "softmax",
    "topk_accuracy",
    "topk_indices",
]

ArrayLike = Any  # numpy array, torch tensor or nested sequence
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


def scores_array(scores: ArrayLike) -> np.ndarray:
    """``scores`` as a float64 ``(N, C)`` array; empty, misshapen or non-finite scores are an error."""
    s = _to_numpy(scores).astype(np.float64, copy=False)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (num_samples, num_classes) array, got shape {s.shape}")
    if not np.isfinite(s).all():
        bad = int((~np.isfinite(s)).any(axis=1).sum())
        raise InvalidValueError(f"scores contain NaN or inf in {bad} row(s): the model diverged or the inputs are broken")
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
    z = scores_array(logits)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each sample's label (ties towards the lower class index)."""
    label_scores = scores[np.arange(len(labels)), labels][:, None]
    classes = np.arange(scores.shape[1])[None, :]
    outrank = (scores > label_scores) | ((scores == label_scores) & (classes < labels[:, None]))
    return outrank.sum(axis=1)


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
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
    s = scores_array(scores)
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
    reduce: VideoReduce


def aggregate_video_predictions(
    clip_scores: ArrayLike,
    video_ids: Sequence[Hashable] | ArrayLike,
    *,
    labels: ArrayLike | None = None,
    reduce: VideoReduce = "mean_prob",
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
    s = scores_array(clip_scores)
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
            raise InvalidValueError(f"views of one video carry different labels (videos {bad}); check the dataset's video ids")
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
