"""Resume keeps the run record true: the config of a resumed run is compared with the recorded one.

A run folder's ``config.yaml`` is the recipe its checkpoints were trained with, and it is
never rewritten. On ``--resume`` the resolved config (file + overrides) is compared key by
key with the run's current record (``config.yaml``, or the latest amendment):

* a difference in a key that shapes what is trained (model, blocks, data, optimizer,
  schedule shape, seed, precision, ...) is an error listing each difference: the checkpoint
  would silently continue with other settings than the record says (an ``optim.lr`` given
  on resume is not the learning rate the restored optimizer uses; a forgotten
  ``data.batch_size`` really changes the batch);
* keys that may change (:data:`RESUMABLE_KEYS`: more epochs, loader workers, logging, the
  device, the evaluation cadence) are allowed and recorded next to the original, as
  ``config.resume-<n>.yaml`` (the full config of that resume, headed by the changes and
  the epoch it resumed after).
"""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path
from typing import Any, Mapping

from ..config import ExperimentConfig, config_to_dict, dump_config, load_config
from ..errors import InvalidValueError
from ..fileio import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["RESUMABLE_KEYS", "ResumeConfigError", "config_differences", "recorded_config_path",
           "check_resume_config", "record_amendment"]

#: Dotted keys that may differ on resume: they change how long, where or how verbosely the
#: run goes on, not what the restored optimizer and data pipeline compute per step.
RESUMABLE_KEYS: frozenset[str] = frozenset({
    "schedule.epochs",
    "data.num_workers",
    "eval.batch_size",
    "eval.every_epochs",
    "runtime.device",
    "runtime.progress",
    "runtime.log_every",
    "runtime.tensorboard",
    "runtime.loggers",
    "runtime.checkpoint_every",
    "runtime.activation_checkpointing",  # memory for time, same function
    "runtime.compile",
    "runtime.flush_denormal",  # speed only: values below ~1e-38 become 0
})

_AMENDMENT = re.compile(r"^config\.resume-(\d+)\.yaml$")


class ResumeConfigError(InvalidValueError):
    """The config given on resume differs from the run's record in keys that cannot change."""

    def __init__(self, differences: list[tuple[str, Any, Any]], record: Path) -> None:
        self.differences = list(differences)
        self.record = record
        lines = [f"--resume: the config differs from the run's record {record} in {len(differences)} key(s) "
                 "that cannot change on resume (the checkpoint was trained with the recorded values):"]
        lines += [f"  {k}: recorded {old!r}, now {new!r}" for k, old, new in differences]
        lines.append(f"resume with the recorded recipe: `snl-video train --config {shlex.quote(str(record))} --resume` "
                     "(overriding only "
                     f"{', '.join(sorted(RESUMABLE_KEYS))}), or start a new run with another runtime.output_dir")
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.differences, self.record))


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value
    return out


def config_differences(recorded: ExperimentConfig, current: ExperimentConfig) -> list[tuple[str, Any, Any]]:
    """``(dotted key, recorded value, current value)`` for every leaf that differs, in key order
    (a key present on one side only has ``None`` on the other)."""
    a = _flatten(config_to_dict(recorded), "", {})
    b = _flatten(config_to_dict(current), "", {})
    keys = list(a) + [k for k in b if k not in a]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def recorded_config_path(run_dir: str | Path) -> Path:
    """The run's current record: its latest ``config.resume-<n>.yaml``, else ``config.yaml``."""
    run_dir = Path(run_dir)
    amendments = sorted(((int(m.group(1)), p) for p in run_dir.glob("config.resume-*.yaml")
                         if (m := _AMENDMENT.match(p.name))), key=lambda t: t[0])
    return amendments[-1][1] if amendments else run_dir / "config.yaml"


def check_resume_config(cfg: ExperimentConfig, run_dir: str | Path, *,
                        checkpoint: str | Path | None = None) -> list[tuple[str, Any, Any]]:
    """Compare ``cfg`` with the record of the run being resumed; return the allowed differences.

    The record is ``run_dir``'s (see :func:`recorded_config_path`); when ``run_dir`` has none
    and ``checkpoint`` lies in another run's ``checkpoints/`` folder, that run's record (then
    ``runtime.output_dir`` may differ: the run continues in a new folder). No record at all:
    nothing to compare (a run from before configs were recorded), an empty list.

    Raises:
        ResumeConfigError: listing every difference in a key outside :data:`RESUMABLE_KEYS`.
    """
    run_dir = Path(run_dir)
    record = recorded_config_path(run_dir)
    allowed = set(RESUMABLE_KEYS)
    if not record.is_file() and checkpoint is not None:
        other = Path(checkpoint).resolve().parent.parent
        if other != run_dir.resolve():
            record = recorded_config_path(other)
            allowed.add("runtime.output_dir")
    if not record.is_file():
        logger.warning("resume: no recorded config in %s to compare with; recording this one", run_dir)
        return []
    # Both sides resolved (engine.builders.resolve_recipe): a record written before runs
    # recorded their resolved model compares equal to the same recipe resolved now.
    from .builders import resolve_recipe

    recorded = resolve_recipe(load_config(record)).config
    cfg = resolve_recipe(cfg).config
    diffs = config_differences(recorded, cfg)
    fixed = [(k, old, new) for k, old, new in diffs if k not in allowed]
    if fixed:
        raise ResumeConfigError(fixed, record)
    if any(k == "schedule.epochs" for k, _, _ in diffs) and cfg.schedule.kind == "cosine":
        logger.warning("resume: schedule.epochs changed under a cosine schedule (%s -> %s): the remaining epochs "
                       "follow a fresh %s-epoch cosine schedule from the resume point (engine.optim.restore_scheduler)",
                       recorded.schedule.epochs, cfg.schedule.epochs, cfg.schedule.epochs)
    return diffs


def record_amendment(cfg: ExperimentConfig, run_dir: str | Path, diffs: list[tuple[str, Any, Any]], *,
                     resumed_after_epoch: int) -> Path:
    """Write ``config.resume-<n>.yaml`` (next free ``n``): the full config of this resume, headed
    by the allowed changes. ``config.yaml`` itself is never touched."""
    run_dir = Path(run_dir)
    taken = [int(m.group(1)) for p in run_dir.glob("config.resume-*.yaml") if (m := _AMENDMENT.match(p.name))]
    path = run_dir / f"config.resume-{max(taken, default=0) + 1}.yaml"
    header = [f"# Resume amendment: resumed after epoch {resumed_after_epoch} with these changes to the recorded "
              "config (config.yaml is the original):"]
    header += [f"#   {k}: {old!r} -> {new!r}" for k, old, new in diffs]
    atomic_write_text(path, "\n".join(header) + "\n" + dump_config(cfg))
    logger.info("resume: recorded the changed settings in %s (%s)", path, ", ".join(k for k, _, _ in diffs))
    return path
