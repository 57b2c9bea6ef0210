"""Training curves of one or several runs, from their ``metrics.jsonl``, as one PNG.

Used by ``snl-video demo`` (one run: train and held-out accuracy) and ``snl-video compare``
(several runs side by side: the curves behind a Table-7-style table).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

from ..errors import InvalidValueError
from ..fileio import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["curve_series", "plot_training_curves"]


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

    Each run has one colour: solid = held-out clip top-1, dashed = training top-1 on random
    clips (shown for a single run, or for runs that were never evaluated). Written
    atomically; returns the plotted series by run, for the caller's records and tests.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series = {name: curve_series(history) for name, history in runs.items()}
    if not any(s["train_loss"] for s in series.values()):
        raise InvalidValueError(f"no epoch records to plot in runs {sorted(runs)}: has any of them finished an epoch?")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    try:
        for k, (name, s) in enumerate(series.items()):
            colour = f"C{k % 10}"
            if s["train_loss"]:
                ax_loss.plot(*zip(*s["train_loss"]), color=colour, marker="o", markersize=3, label=name)
            if s["val_clip_top1"]:
                ax_acc.plot(*zip(*s["val_clip_top1"]), color=colour, marker="s", markersize=3,
                            label=f"{name}: held-out clip top-1")
            if s["train_top1"] and (len(series) == 1 or not s["val_clip_top1"]):
                ax_acc.plot(*zip(*s["train_top1"]), color=colour, linestyle="--",
                            label=f"{name}: train top-1 (random clips)")
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
