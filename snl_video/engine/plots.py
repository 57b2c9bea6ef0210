"""Figures: training curves of one or several runs, and the confusion matrix of an evaluation.

:func:`plot_training_curves` draws runs from their ``metrics.jsonl`` as one PNG, used by
``snl-video demo`` (one run: train and held-out accuracy) and ``snl-video compare``
(several runs side by side: the curves behind a Table-7-style table).
:func:`plot_confusion_matrix` draws a :class:`~snl_video.engine.reports.MetricsReport`'s
confusion matrix (``eval`` writes it beside the CSVs).
"""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import InvalidValueError
from ..fileio import atomic_write

if TYPE_CHECKING:  # reports imports this module to draw its figure
    from .reports import MetricsReport

logger = logging.getLogger(__name__)

__all__ = ["confusion_classes_shown", "confusion_title", "curve_labels", "curve_series", "plot_confusion_matrix",
           "plot_training_curves"]


def curve_series(history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``(epoch, value)`` pairs of the epoch records: ``train_loss``, ``train_top1`` and
    ``val_clip_top1`` (only the epochs that were evaluated)."""
    epochs = [h for h in history if h.get("kind") == "epoch"]
    return {
        name: [(int(h["epoch"]), float(h[name])) for h in epochs if name in h]
        for name in ("train_loss", "train_top1", "val_clip_top1")
    }


def plot_training_curves(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike[str]
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Loss (left) and accuracy (right) per epoch for every run in ``runs`` (name → history).

    Each run has one colour and one marker: solid = held-out clip top-1, dashed = training
    top-1 on random clips (shown for a single run, or for runs that were never evaluated). A
    run whose curves equal an earlier run's is drawn dotted with hollow, larger markers over
    it and labelled "identical to <run>" (:func:`curve_labels`), so it does not hide. Written
    atomically; returns the plotted series by run, for the caller's records and tests.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series = {name: curve_series(history) for name, history in runs.items()}
    if not any(s["train_loss"] for s in series.values()):
        raise InvalidValueError(f"no epoch records to plot in runs {sorted(runs)}: has any of them finished an epoch?")
    labels = curve_labels(series)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    try:
        for k, (name, s) in enumerate(series.items()):
            label = labels[name]
            style: dict[str, Any] = dict(color=f"C{k % 10}", marker=_MARKERS[k % len(_MARKERS)], markersize=3)
            if label != name:  # the same curves as an earlier run: over it, and still visible
                style.update(linestyle=":", markersize=7, markerfacecolor="none", zorder=3)
            if s["train_loss"]:
                ax_loss.plot(*zip(*s["train_loss"]), **style, label=label)
            if s["val_clip_top1"]:
                ax_acc.plot(*zip(*s["val_clip_top1"]), **style, label=f"{label}: held-out clip top-1")
            if s["train_top1"] and (len(series) == 1 or not s["val_clip_top1"]):
                ax_acc.plot(*zip(*s["train_top1"]), **{**style, "linestyle": "--"},
                            label=f"{label}: train top-1 (random clips)")
        ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
        ax_acc.set(xlabel="epoch", ylabel="top-1 (%)", title="accuracy", ylim=(0, 100))
        for ax in (ax_loss, ax_acc):  # epochs are whole numbers
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_loss.legend(fontsize=8)
        ax_acc.legend(fontsize=8)
        title = "training curves: " + ", ".join(series)
        fig.suptitle(title if len(title) <= 120 else title[:117] + "...", fontsize=10)
        fig.tight_layout()
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, metadata={"Title": title}))
    finally:
        plt.close(fig)
    logger.info("training curves: %s", path)
    return series


#: one marker per run (with its colour), so runs read apart in grey and where curves cross
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def curve_labels(series: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]]) -> dict[str, str]:
    """The legend label of each run: its name, or ``<name> (identical to <run>)`` when all its
    curves equal those of an earlier run (drawn on top of each other, one would hide the other)."""
    labels: dict[str, str] = {}
    seen: list[str] = []
    for name, curves in series.items():
        twin = next((other for other in seen if series[other] == curves), None)
        labels[name] = f"{name} (identical to {twin})" if twin is not None else name
        if twin is None:
            seen.append(name)
    return labels


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
        # wrapped to the figure's width (about 0.55 em per character): a long run or checkpoint name is not cut off
        width = max(30, int(side * 72 / (10 * 0.55)) - 4)
        lines = [heading, title, subtitle] if heading else [title, subtitle]
        ax.set_title("\n".join(textwrap.fill(line, width, break_on_hyphens=False) for line in lines), fontsize=10)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if cm[i, j]:
                        ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                                color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black")
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
        fig.tight_layout()
        metadata = {"Title": heading or title}
        # bbox "tight": the saved image grows to hold whatever tight_layout could not fit
        return atomic_write(path, lambda f: fig.savefig(f, format="png", metadata=metadata, bbox_inches="tight"))
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
