"""Experiment trackers: where a training run's metrics go (``runtime.loggers``).

One small interface, :class:`Tracker` (``start`` → ``log_params`` → ``log_metrics`` … →
``log_artifacts`` → ``finish``), and one class per tracker:

* ``tensorboard`` — event files in ``<output_dir>/tensorboard`` (scalars ``<kind>/<name>``);
* ``csv`` — ``<output_dir>/metrics.csv`` (one row per metric: ``kind, epoch, step, name, value``);
* ``wandb`` — a Weights & Biases run (the extra ``snl-video[wandb]``);
* ``mlflow`` — an MLflow run (the extra ``snl-video[mlflow]``).

``metrics.jsonl``, which ``compare``, ``study`` and ``demo`` read back, is not a tracker: the
run writes it whatever ``runtime.loggers`` says (:class:`~snl_video.engine.metric_log.MetricLogger`).

What a remote tracker (W&B, MLflow) receives: the resolved recipe as hyper-parameters
(nested for W&B, dotted keys for MLflow), every step and epoch record as metrics at the
global optimizer step, and, from the evaluation into the run's ``eval/`` folder, its figures
(W&B: the run summary) and ``metrics.json`` and the PNGs as artifacts. The run is named after
the recipe's ``name`` and the output folder. Only the main process logs (``torchrun``).

Resume. The id each remote tracker gives the run is stored in ``<output_dir>/trackers.json``;
``train --resume`` (and the final evaluation) reopen that same run instead of starting a new one.

Each tracker is configured by its own environment variables, as its users expect:
``WANDB_PROJECT`` (default ``snl_video``), ``WANDB_MODE=offline``, ``WANDB_DIR`` (default: the
run's output folder); ``MLFLOW_TRACKING_URI`` (default: MLflow's own), ``MLFLOW_EXPERIMENT_NAME``
(default ``snl_video``). No tracker package is imported until a run opens that tracker.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from ..errors import InvalidValueError
from ..fileio import atomic_write_text

if TYPE_CHECKING:
    from ..config import ExperimentConfig

logger = logging.getLogger(__name__)

__all__ = ["TRACKERS_RECORD", "TRACKER_EXTRAS", "MetricRecord", "Tracker", "CsvTracker", "TensorBoardTracker",
           "WandbTracker", "MlflowTracker", "TRACKERS", "run_name", "flatten_params", "tracker_problems",
           "check_tracker_stores", "open_trackers", "read_trackers_record", "log_evaluation"]

#: The file in a run's output folder that keeps each remote tracker's run id (for ``--resume``).
TRACKERS_RECORD = "trackers.json"

#: The trackers that are optional extras: logger name → (the module it imports, the pip extra).
TRACKER_EXTRAS: dict[str, tuple[str, str]] = {
    "wandb": ("wandb", "snl-video[wandb]"),
    "mlflow": ("mlflow", "snl-video[mlflow]"),
}


@dataclass(frozen=True)
class MetricRecord:
    """One record of the run: ``kind`` (``step``, ``epoch``, ``eval``), where it was taken and its values.

    ``step`` is the global optimizer step (``None``: a figure of the whole run, such as the
    final evaluation's); ``values`` may hold non-numbers (e.g. the selection subset's name),
    which only the CSV keeps.
    """

    kind: str
    step: int | None
    epoch: int | None
    values: Mapping[str, Any]

    def scalars(self) -> dict[str, float]:
        """The numeric values as ``{"<kind>/<name>": value}`` (the TensorBoard tag / tracker key)."""
        return {f"{self.kind}/{name}": float(value) for name, value in self.values.items()
                if isinstance(value, (int, float))}


class Tracker:
    """Where metrics go. The base class does nothing; each tracker overrides what it records."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    #: The logger's name in ``runtime.loggers``.
    name: ClassVar[str] = ""
    #: Whether the tracker keeps a run of its own (an id stored in ``trackers.json`` for resume).
    remote: ClassVar[bool] = False

    def start(self, *, run_name: str, out_dir: Path, run_id: str | None = None) -> str | None:
        """Open the tracker's run (``run_id``: continue that run); returns the run's id, if any."""
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's hyper-parameters (the resolved recipe, nested)."""

    def log_metrics(self, record: MetricRecord) -> None:
        """Record one metric record."""

    def log_artifacts(self, paths: Sequence[Path], *, folder: str) -> None:
        """Attach files to the run under ``folder``."""

    def finish(self, *, failed: bool = False) -> None:
        """Close the run (``failed``: it stopped on an error or an interrupt)."""


class CsvTracker(Tracker):
    """``metrics.csv``: a fixed column set (``kind, epoch, step, name, value``, one row per metric),
    so records with different fields share one file that pandas reads directly."""

    name = "csv"

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir)
        self.path = Path(out_dir) / "metrics.csv"

    def start(self, *, run_name: str, out_dir: Path, run_id: str | None = None) -> str | None:
        if not self.path.exists():  # a resumed run appends to its file
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(["kind", "epoch", "step", "name", "value"])
        return None

    def log_metrics(self, record: MetricRecord) -> None:
        with open(self.path, "a", newline="") as f:  # closed after each record: a killed run loses nothing
            w = csv.writer(f)
            for name, value in record.values.items():
                w.writerow([record.kind, record.epoch, record.step, name, value])


class TensorBoardTracker(Tracker):
    """Event files in ``<output_dir>/tensorboard`` (``tensorboard --logdir runs``)."""

    name = "tensorboard"

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir)
        self.log_dir = Path(out_dir) / "tensorboard"
        self.writer: Any = None

    def start(self, *, run_name: str, out_dir: Path, run_id: str | None = None) -> str | None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # a dependency of snl_video: only a broken install lacks it
            logger.warning("the tensorboard package is missing (reinstall snl_video): metrics go to "
                           "metrics.jsonl / metrics.csv only")
        else:
            self.writer = SummaryWriter(str(self.log_dir))
        return None

    def log_metrics(self, record: MetricRecord) -> None:
        if self.writer is None or record.step is None:
            return
        for tag, value in record.scalars().items():
            self.writer.add_scalar(tag, value, record.step)

    def finish(self, *, failed: bool = False) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WandbTracker(Tracker):
    """A Weights & Biases run: the recipe as its config, metrics by global step, files as artifacts.

    ``WANDB_MODE=offline`` keeps everything on disk (``wandb sync`` uploads it later);
    ``WANDB_DIR`` chooses where (default: the run's output folder, in ``wandb/``).
    """

    name = "wandb"
    remote = True

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir)
        self.run: Any = None

    def start(self, *, run_name: str, out_dir: Path, run_id: str | None = None) -> str | None:
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "snl_video",
            name=run_name,
            id=run_id,
            resume="allow" if run_id else None,
            dir=None if os.environ.get("WANDB_DIR") else str(out_dir),
        )
        logger.info("W&B run %s (%s)", self.run.id, self.run.name)
        return str(self.run.id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        # a resumed run may change the keys runtime allows to change on resume (schedule.epochs ...)
        self.run.config.update(dict(params), allow_val_change=True)

    def log_metrics(self, record: MetricRecord) -> None:
        scalars = record.scalars()
        if not scalars:
            return
        if record.step is None:  # a figure of the whole run
            self.run.summary.update(scalars)
        else:
            self.run.log(scalars, step=record.step)

    def log_artifacts(self, paths: Sequence[Path], *, folder: str) -> None:
        import wandb

        artifact = wandb.Artifact(name=f"{folder}-{self.run.id}", type=folder)
        for path in paths:
            artifact.add_file(str(path), name=Path(path).name)
        self.run.log_artifact(artifact)

    def finish(self, *, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


class MlflowTracker(Tracker):
    """An MLflow run through :class:`mlflow.tracking.MlflowClient` (no global active run).

    The tracking store is MLflow's: ``MLFLOW_TRACKING_URI`` (a server ``http://...``, a database,
    or a folder ``file:///...``); the experiment is ``MLFLOW_EXPERIMENT_NAME`` (default ``snl_video``).
    Hyper-parameters are the recipe's dotted keys with JSON values (``optim.lr`` → ``0.01``).
    """

    name = "mlflow"
    remote = True
    #: MLflow's limits per ``log_batch`` call.
    _PARAMS_PER_BATCH = 100
    _METRICS_PER_BATCH = 1000

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir)
        self.client: Any = None
        self.run_id: str | None = None
        self.resumed = False

    def start(self, *, run_name: str, out_dir: Path, run_id: str | None = None) -> str | None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        if run_id is not None:
            try:
                self.client.get_run(run_id)
            except MlflowException:
                logger.warning("MLflow run %s (from %s) is not in the tracking store %s: starting a new run",
                               run_id, TRACKERS_RECORD, self.client.tracking_uri)
            else:
                self.client.update_run(run_id, status="RUNNING")
                self.run_id, self.resumed = run_id, True
        if self.run_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "snl_video"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment is not None else self.client.create_experiment(name)
            run = self.client.create_run(experiment_id, run_name=run_name,
                                         tags={"snl_video.output_dir": str(out_dir)})
            self.run_id = run.info.run_id
        logger.info("MLflow run %s in %s", self.run_id, self.client.tracking_uri)
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        flat = {key: value if isinstance(value, str) else json.dumps(value)
                for key, value in flatten_params(params).items()}
        tags = []
        if self.resumed:  # MLflow refuses to change a logged parameter: new values become tags
            logged = self.client.get_run(self.run_id).data.params
            tags = [RunTag(f"snl_video.resumed.{k}", v) for k, v in flat.items() if k in logged and logged[k] != v]
            flat = {k: v for k, v in flat.items() if k not in logged}
        items = [Param(k, v) for k, v in flat.items()]
        for i in range(0, len(items), self._PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + self._PARAMS_PER_BATCH])
        if tags:
            self.client.log_batch(self.run_id, tags=tags)

    def log_metrics(self, record: MetricRecord) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = record.step if record.step is not None else 0
        items = [Metric(key, value, now, step) for key, value in record.scalars().items()]
        for i in range(0, len(items), self._METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i:i + self._METRICS_PER_BATCH])

    def log_artifacts(self, paths: Sequence[Path], *, folder: str) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def finish(self, *, failed: bool = False) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
            self.client = None


#: The trackers by their name in ``runtime.loggers``; each is built with the run's output folder.
TRACKERS: dict[str, type[Tracker]] = {cls.name: cls for cls in (TensorBoardTracker, CsvTracker, WandbTracker,
                                                                 MlflowTracker)}


def run_name(cfg: ExperimentConfig) -> str:
    """The trackers' run name: the recipe's ``name`` and the output folder's (once when they agree)."""
    folder = Path(cfg.runtime.output_dir).name
    return cfg.name if folder in ("", cfg.name) else f"{cfg.name}-{folder}"


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``{"optim": {"lr": 0.1}}`` → ``{"optim.lr": 0.1}``).

    A mapping whose keys are not all identifiers (``optim.lr_mult: {"head.*": 10}``) stays one
    value, as do empty mappings: every key is kept, and every name is one a tracker accepts.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and all(isinstance(k, str) and k.isidentifier() for k in value):
            flat.update(flatten_params(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


# --------------------------------------------------------------------------------------
# Checks before anything heavy runs
# --------------------------------------------------------------------------------------


def tracker_problems(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """``(key, message)`` for each logger of the recipe whose package is not installed (no import)."""
    problems = []
    for name in cfg.runtime.active_loggers():
        if name in TRACKER_EXTRAS:
            module, extra = TRACKER_EXTRAS[name]
            if importlib.util.find_spec(module) is None:
                problems.append(("runtime.loggers", f"{name!r} needs the {module} package, which is not installed: "
                                 f"pip install \"{extra}\" (or remove {name} from runtime.loggers)"))
    return problems


def check_tracker_stores(cfg: ExperimentConfig) -> None:
    """Open MLflow's tracking store when ``mlflow`` is a logger: a store this installation cannot
    use (a database URI with ``mlflow-skinny``, a refused file store) is an error before the run
    builds anything. Creating the client contacts no server."""
    if "mlflow" not in cfg.runtime.active_loggers():
        return
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient()  # builds the store (a REST store contacts nobody until the run starts)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds here; each is this one problem
        import mlflow

        uri = mlflow.get_tracking_uri()
        raise InvalidValueError(
            f"runtime.loggers has mlflow, but its tracking store {uri} cannot be opened "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): set MLFLOW_TRACKING_URI to "
            "your tracking server (http://HOST:PORT), or install the full package (pip install mlflow) for a local "
            "database store") from None


# --------------------------------------------------------------------------------------
# Opening the trackers of a run
# --------------------------------------------------------------------------------------


def read_trackers_record(out_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``trackers.json`` of a run folder: ``{tracker: {"run_id": ...}}`` (empty when there is none)."""
    path = Path(out_dir) / TRACKERS_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        logger.warning("%s is unreadable (%s): the trackers start new runs", path, exc)
        return {}
    return record if isinstance(record, dict) else {}


def _start(names: Sequence[str], out: Path, *, name: str, record: Mapping[str, Any]) -> tuple[list[Tracker], dict]:
    trackers: list[Tracker] = []
    ids: dict[str, dict[str, Any]] = {}
    try:
        for logger_name in names:
            tracker = TRACKERS[logger_name](out)
            previous = record.get(logger_name, {}).get("run_id") if tracker.remote else None
            run_id = tracker.start(run_name=name, out_dir=out, run_id=previous)
            trackers.append(tracker)
            if run_id is not None:
                ids[logger_name] = {"run_id": run_id}
    except BaseException:
        for tracker in trackers:  # those already open are closed, not left running
            tracker.finish(failed=True)
        raise
    return trackers, ids


def open_trackers(cfg: ExperimentConfig, *, fresh: bool) -> list[Tracker]:
    """Start the recipe's loggers for the run in ``runtime.output_dir`` and log its recipe.

    ``fresh``: a new run (new tracker runs, whatever ``trackers.json`` holds); otherwise the
    runs recorded in ``trackers.json`` continue. The record is (re)written with the run ids.
    """
    from ..config import config_to_dict

    out = Path(cfg.runtime.output_dir)
    record = {} if fresh else read_trackers_record(out)
    trackers, ids = _start(cfg.runtime.active_loggers(), out, name=run_name(cfg), record=record)
    if ids:
        atomic_write_text(out / TRACKERS_RECORD, json.dumps({**record, **ids}, indent=2) + "\n")
    params = config_to_dict(cfg)
    try:
        for tracker in trackers:
            tracker.log_params(params)
    except BaseException:
        for tracker in trackers:
            tracker.finish(failed=True)
        raise
    return trackers


def log_evaluation(cfg: ExperimentConfig, values: Mapping[str, Any], files: Sequence[Path]) -> None:
    """Send an evaluation of the run in ``runtime.output_dir`` to its remote trackers.

    Each remote logger of the recipe with a run in the folder's ``trackers.json`` gets
    ``values`` as run-level figures (``eval/<name>``) and ``files`` as artifacts under
    ``eval``. The evaluation's own files are already written, so a tracker that is not
    installed or fails here is a warning, not an error.
    """
    out = Path(cfg.runtime.output_dir)
    record = read_trackers_record(out)
    for name in cfg.runtime.active_loggers():
        if name not in TRACKER_EXTRAS or name not in record:
            continue
        if importlib.util.find_spec(TRACKER_EXTRAS[name][0]) is None:
            logger.warning("the evaluation is not sent to %s: the package is not installed (pip install \"%s\")",
                           name, TRACKER_EXTRAS[name][1])
            continue
        try:
            trackers, _ = _start([name], out, name=run_name(cfg), record=record)
        except Exception as exc:  # noqa: BLE001 - the evaluation's files are written: a warning
            logger.warning("the evaluation is not sent to %s: %s", name, exc)
            continue
        tracker = trackers[0]
        failed = True
        try:
            tracker.log_metrics(MetricRecord("eval", step=None, epoch=values.get("epoch"), values=values))
            tracker.log_artifacts(files, folder="eval")
            failed = False
        except Exception as exc:  # noqa: BLE001 - as above
            logger.warning("the evaluation is not sent to %s: %s", name, exc)
        finally:
            tracker.finish(failed=failed)
