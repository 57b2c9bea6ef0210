"""The metric records of a training run: ``metrics.jsonl``, and the loggers of ``runtime.loggers``.

:class:`MetricLogger` writes them while :func:`~snl_video.engine.train.train` runs;
:func:`read_history` reads them back (``compare``, ``demo`` and the tests).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from .trackers import MetricRecord, Tracker

logger = logging.getLogger(__name__)

__all__ = ["MetricLogger", "read_history"]


class MetricLogger:
    """Appends every metric record to ``metrics.jsonl`` and hands it to the run's trackers.

    A record is ``{"kind": "step"|"epoch"|"eval", "epoch": .., "step": .., name: value, ...}``.
    ``metrics.jsonl`` is the run's own record (``compare``, ``study`` and ``demo`` read it back),
    written whatever the loggers; ``trackers`` (:func:`~snl_video.engine.trackers.open_trackers`:
    ``metrics.csv``, TensorBoard, W&B, MLflow) get each record too.
    """

    def __init__(self, out_dir: Path, *, enabled: bool = True, trackers: Sequence[Tracker] = ()) -> None:
        self.enabled = enabled
        self.jsonl = out_dir / "metrics.jsonl"
        self.trackers = list(trackers) if enabled else []

    def log(self, kind: str, *, epoch: int, step: int, **values: Any) -> None:
        """Append one record (a no-op on a process other than the main one)."""
        if not self.enabled:
            return
        record = {"kind": kind, "epoch": epoch, "step": step, **values}
        with open(self.jsonl, "a") as f:  # closed after each record: a killed run loses nothing
            f.write(json.dumps(record) + "\n")
        for tracker in self.trackers:
            tracker.log_metrics(MetricRecord(kind, step=step, epoch=epoch, values=values))

    def close(self, *, failed: bool = False) -> None:
        """Finish every tracker's run (``failed``: the run stopped on an error or an interrupt)."""
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.finish(failed=failed)


def read_history(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (empty when there is none)."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
