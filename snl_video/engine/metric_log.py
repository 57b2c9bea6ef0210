"""The metric records of a training run: ``metrics.jsonl`` and ``metrics.csv`` (and TensorBoard).

:class:`MetricLogger` writes them while :func:`~snl_video.engine.train.train` runs;
:func:`read_history` reads them back (``compare``, ``demo`` and the tests).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["MetricLogger", "read_history"]


class MetricLogger:
    """Appends every metric record to ``metrics.jsonl`` and ``metrics.csv`` (and TensorBoard).

    A record is ``{"kind": "step"|"epoch"|"eval", "epoch": .., "step": .., name: value, ...}``.
    The CSV has a fixed column set (``kind, epoch, step, name, value``: one row per metric) so
    records with different fields share one file that pandas reads directly.
    """

    def __init__(self, out_dir: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.jsonl = out_dir / "metrics.jsonl"
        self.csv = out_dir / "metrics.csv"
        self.writer = None
        if not enabled:
            return
        if not self.csv.exists():
            with open(self.csv, "w", newline="") as f:
                csv.writer(f).writerow(["kind", "epoch", "step", "name", "value"])
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning("the tensorboard package is missing (reinstall snl_video): metrics go to "
                               "metrics.jsonl / metrics.csv only")
            else:
                self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def log(self, kind: str, *, epoch: int, step: int, **values: float) -> None:
        """Append one record (a no-op on a process other than the main one)."""
        if not self.enabled:
            return
        record = {"kind": kind, "epoch": epoch, "step": step, **values}
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
        with open(self.csv, "a", newline="") as f:
            w = csv.writer(f)
            for name, value in values.items():
                w.writerow([kind, epoch, step, name, value])
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any (the files are closed after each record)."""
        if self.writer is not None:
            self.writer.close()


def read_history(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (empty when there is none)."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
