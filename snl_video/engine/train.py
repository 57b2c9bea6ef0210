"""``snl-video train``: fine-tune a backbone with non-local blocks, as a recipe with a fixed lifecycle.

:func:`train` reads top to bottom: **setup** (seeds, device, process group, model and
pretrained weights, freezing, optimizer, schedule, data, resume) → **train** (epochs of
forward / backward / step with autocast and gradient accumulation, a clip-level evaluation
every ``eval.every_epochs``) → **save** (an atomic checkpoint every epoch) → **cleanup**.

Exact resume. Every random draw of an epoch comes from generators seeded by
``(runtime.seed, epoch)``: the sampler's shuffle, each item's clip and crop (seeded by
``(epoch seed, item)``, see :meth:`~snl_video.data.datasets.ClipDataset.set_epoch_seed`)
and the global generators the model draws from (dropout). A run resumed from the
checkpoint of epoch ``e`` therefore replays epoch ``e + 1`` exactly as the uninterrupted
run did (on the CPU with ``runtime.deterministic``, bit for bit); the RNG states are saved
as well, for the record and for anything drawn outside the epoch loop.

Scaling. The same sampler serves 1 and W processes (rank r takes every W-th item of the
epoch's permutation) and augmentation depends on the item, not on who reads it, so W
processes with batch b and a run with batch b and W-step gradient accumulation put the
same clips into each optimizer step. The steps are equal where BatchNorm does not use
batch statistics (tested with 2 gloo processes, BatchNorm on running statistics); with
batch statistics they differ, as rank r normalises over items r, r+W, ... of the step and
a micro-batch over consecutive ones. Epoch records (loss, top-1, clips/s)
are summed over all processes; per-step records are rank 0's micro-batch.

A non-finite loss stops the run with :class:`NonFiniteLossError` before the optimizer
step, so the last checkpoint on disk is the last good one.
"""


from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..config import FREEZE_POINTS, STAGE_NAMES, ExperimentConfig, save_config
from . import distributed as dist_utils
from .builders import (build_dataset, build_model_from_config, class_names, normalization_from_config, resolve_recipe,
                       resolve_device, selection_subset)
from .checkpoint import (BEST, LAST, capture_rng_state, checkpoint_metadata, load_training_checkpoint, restore_rng_state,
                         save_checkpoint)
from .evaluate import evaluate_model
from .metric_log import MetricLogger, read_history
from .optim import EpochSchedule, batch_mixer, build_optimizer, build_scheduler, restore_scheduler
from .preflight import preflight, usable_workers
from .records import TRAIN_VIDEOS_RECORD, check_resume_videos, train_fingerprint
from ..errors import InvalidValueError, MissingFileError, SnlVideoError
from ..fileio import atomic_write_text
from ..progress import progress as progress_bar
from .runtime import flush_denormal
from .resume import check_resume_config, record_amendment
from .state_fit import load_model_state
from .trackers import check_tracker_stores, open_trackers

logger = logging.getLogger(__name__)

# ``read_history`` lives in :mod:`.metric_log`, ``build_optimizer`` / ``build_scheduler`` in
# :mod:`.optim`; ``read_history`` stays importable from here, where callers long found it.
__all__ = ["NonFiniteLossError", "TrainResult", "freeze_groups", "freeze_until", "train", "epoch_seed", "read_history", "train_one_epoch",
           "check_resume_world_size"]


class NonFiniteLossError(SnlVideoError, RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves behind."""

    output_dir: Path
    epochs_done: int
    history: list[dict[str, Any]]
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    #: The clip-level pass of the last epoch's evaluation ``(indices, labels, logits)``, made
    #: with the weights of ``last_checkpoint``: the final evaluation reuses it.
    final_clip_outputs: Any = None



# --------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------


def train(
    cfg: ExperimentConfig,
    *,
    resume: bool | str | os.PathLike[str] = False,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Run the recipe ``cfg``; see the module docstring.

    Denormals are flushed on every CPU thread while it runs and the caller's setting is
    restored when it returns (``runtime.flush_denormal``; :func:`~snl_video.engine.runtime.flush_denormal`).

    Args:
        resume: ``True`` continues from ``<output_dir>/checkpoints/last.pt``; a path continues
            from that checkpoint; ``False`` starts fresh (an existing run in ``output_dir``
            is an error, so nothing is overwritten by accident).
        stop_after_epochs: stop after this many epochs *of this call* (as if killed after
            the epoch's checkpoint): tests and time-boxed jobs resume later.
    """
    with flush_denormal(cfg.runtime.flush_denormal):
        return _train(cfg, resume=resume, stop_after_epochs=stop_after_epochs)


def _train(cfg: ExperimentConfig, *, resume: bool | str | os.PathLike[str],
           stop_after_epochs: int | None) -> TrainResult:
    """The recipe itself: set-up, epochs, save (see :func:`train`)."""
    # ---- setup --------------------------------------------------------------------------
    # The run's record is the model it trains: what the registry entry implies, the block
    # placement and the normalisation are written out once, here, and recorded below.
    resolved = resolve_recipe(cfg)
    cfg = resolved.config
    for line in resolved.describe():
        logger.info("recipe resolved: %s", line)
    out = Path(cfg.runtime.output_dir)
    device = resolve_device(cfg.runtime.device)
    started_pg = dist_utils.setup_distributed(device)
    _seed_process(cfg, device)
    resume_path = _resume_path(resume, out)
    # The run record is never rewritten: on resume, keys that cannot change are an error
    # (before anything is built or written); allowed changes are recorded beside it.
    resume_changes = check_resume_config(cfg, out, checkpoint=resume_path) if resume_path is not None else []
    # Every cheap check (model, placement, data, labels, trackers) before weights, checkpoints or folders.
    preflight(cfg, subsets=("train", "test"))
    if dist_utils.is_main():
        check_tracker_stores(cfg)  # only the main process logs to the trackers
    dist_utils.barrier()
    run = _build_run(cfg, device, out, load_weights=resume_path is None)
    if resume_path is not None:
        _restore(run, resume_path, resume_changes)
    _attach_data(run)
    log = _open_run_folder(run, fresh=resume_path is None)

    # ---- train: epochs, each saved before the next starts ---------------------------------
    history: list[dict[str, Any]] = []
    last_ckpt: Path | None = run.ckpt_dir / LAST if resume_path is not None else None
    best_ckpt: Path | None = run.ckpt_dir / BEST if (run.ckpt_dir / BEST).exists() else None
    epochs_this_call = 0
    final_clip_outputs = None
    failed = True  # until the loop ends normally: the trackers mark the run failed
    try:
        for epoch in range(run.start_epoch, cfg.schedule.epochs):
            record, clip_outputs = _run_epoch(run, epoch, log)
            if clip_outputs is not None:
                final_clip_outputs = clip_outputs  # the final evaluation's clip pass
            history.append(record)
            # ---- save -----------------------------------------------------------------------
            last_ckpt, best_ckpt = _save_epoch(run, epoch, record, last_ckpt, best_ckpt)
            dist_utils.barrier()
            epochs_this_call += 1
            if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs:
                logger.info("stopping after %d epoch(s) of this call (resume with --resume)", epochs_this_call)
                break
        failed = False
    finally:
        # ---- cleanup ------------------------------------------------------------------------
        log.close(failed=failed)
        if started_pg:
            dist_utils.cleanup_distributed()
    done = run.start_epoch + epochs_this_call
    return TrainResult(out, done, history, last_ckpt, best_ckpt, final_clip_outputs=final_clip_outputs)


# --------------------------------------------------------------------------------------
# Set-up steps, in the order train() calls them
# --------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What the epochs of one run share: built once by the set-up, read by every epoch."""

    cfg: ExperimentConfig
    out: Path
    device: torch.device
    main: bool
    model: nn.Module
    #: ``model`` as the steps call it: wrapped by DDP and/or ``torch.compile`` when asked.
    net: nn.Module
    frozen: list[str]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    start_epoch: int = 0
    best_top1: float = -1.0
    train_ds: Any = None
    selection: Literal["val", "test"] = "test"
    selection_videos: int = 0
    steps_per_epoch: int = 0
    #: What every checkpoint carries besides the weights (see :func:`_attach_data`).
    description: dict[str, Any] | None = None

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"


def _seed_process(cfg: ExperimentConfig, device: torch.device) -> None:
    """Determinism switches and the set-up's seed (each rank its own)."""
    r = cfg.runtime
    if r.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    _seed_everything(epoch_seed(r.seed, -1) + dist_utils.rank())


def _resume_path(resume: bool | str | os.PathLike[str], out: Path) -> Path | None:
    """The checkpoint to resume from, or ``None`` for a fresh run (which must not overwrite one)."""
    ckpt_dir = out / "checkpoints"
    resume_path: Path | None = None
    if resume is True:
        resume_path = ckpt_dir / LAST
        if not resume_path.is_file():
            raise MissingFileError(f"--resume: no checkpoint at {resume_path}; start without --resume")
    elif resume:
        resume_path = Path(resume)
    elif dist_utils.is_main() and (ckpt_dir / LAST).exists():
        raise InvalidValueError(f"{out} already holds a run (checkpoints/{LAST}); pass --resume to continue it, "
                         f"or set runtime.output_dir to a new folder")
    if resume_path is not None and not resume_path.is_file():
        raise MissingFileError(f"--resume-from {resume_path}: no such checkpoint file")
    return resume_path


def _build_run(cfg: ExperimentConfig, device: torch.device, out: Path, *, load_weights: bool) -> _Run:
    """Model (pretrained weights unless resuming, freezing, memory knobs), optimizer, schedule, scaler."""
    r = cfg.runtime
    model = build_model_from_config(cfg, load_weights=load_weights)
    frozen = freeze_until(model, r.freeze_until)
    if frozen:
        logger.info("frozen (runtime.freeze_until=%s): %s", r.freeze_until, ", ".join(frozen))
    model.to(device)
    if r.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    if r.activation_checkpointing:
        from .memory import apply_activation_checkpointing

        wrapped = apply_activation_checkpointing(model, r.activation_checkpointing)
        logger.info("activation checkpointing: %d residual blocks of %s recompute their activations in backward",
                    wrapped, ", ".join(r.activation_checkpointing))
    if r.sync_bn and dist_utils.is_distributed():
        if device.type != "cuda":  # runtime.device=auto on a machine without a GPU
            raise InvalidValueError("runtime.sync_bn=true needs CUDA devices (PyTorch's SyncBatchNorm); this run is on "
                             f"{device.type}: set runtime.sync_bn=false")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_optimizer(model, cfg)
    # Learnable-orthogonal SRBs: P, Q are retracted onto O(n) after every step, never in forward.
    from ..nonlocal_blocks import attach_orthogonal_retraction

    attach_orthogonal_retraction(model, optimizer)
    scheduler = build_scheduler(optimizer, cfg)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(r.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=r.amp == "fp16")
    net: nn.Module = model
    if dist_utils.is_distributed():
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if r.compile:
        from .memory import compile_model

        net = compile_model(net)
    return _Run(cfg=cfg, out=out, device=device, main=dist_utils.is_main(), model=model, net=net, frozen=frozen,
                optimizer=optimizer, scheduler=scheduler, scaler=scaler, amp_dtype=amp_dtype)


def check_resume_world_size(recorded: Any, now: int, *, checkpoint: str | os.PathLike[str]) -> None:
    """Refuse to resume a run with another number of processes than trained it.

    Each optimizer step takes ``data.batch_size x runtime.grad_accum_steps x processes``
    clips: a run started under ``torchrun --nproc_per_node=2`` and resumed as one process
    would go on with half the batch, twice the steps per epoch and the schedule's learning
    rates, and its record would not say so. ``recorded`` None (a checkpoint from before the
    count was stored) is not checked.

    Raises:
        InvalidValueError: naming both counts and the launch that resumes it.
    """
    if recorded is None or int(recorded) == now:
        return
    launch = ("snl-video train ... --resume" if int(recorded) == 1 else
              f"torchrun --nproc_per_node={int(recorded)} -m snl_video.cli train ... --resume (over all its nodes)")
    raise InvalidValueError(
        f"{checkpoint} was trained by {int(recorded)} process(es), this resume runs {now}: each step would take "
        f"another batch (data.batch_size x runtime.grad_accum_steps x processes) than the run so far; resume with "
        f"{int(recorded)} process(es): {launch}")


def _restore(run: _Run, resume_path: Path, resume_changes: list[Any]) -> None:
    """Load weights, optimizer, schedule, scaler and RNG states; record allowed config changes."""
    state = load_training_checkpoint(resume_path)
    # the same training videos as when the run started (not a dataset re-split in place since)
    check_resume_videos(state.get("train_videos"), run.cfg, checkpoint=resume_path)
    check_resume_world_size(state.get("world_size"), dist_utils.world_size(), checkpoint=resume_path)
    load_model_state(run.model, state, checkpoint=resume_path)  # one-line error for another recipe's file
    run.optimizer.load_state_dict(state["optimizer"])
    # The schedule of this config continued from the checkpoint's epoch (a changed
    # schedule.epochs is followed; see restore_scheduler for the rule).
    restore_scheduler(run.scheduler, state["scheduler"], run.cfg)
    run.scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    run.start_epoch, run.best_top1 = int(state["epoch"]), float(state.get("best_top1", -1.0))
    logger.info("resumed from %s after epoch %d", resume_path, run.start_epoch)
    if run.main and resume_changes and (run.out / "config.yaml").is_file():
        record_amendment(run.cfg, run.out, resume_changes, resumed_after_epoch=run.start_epoch)


def _attach_data(run: _Run) -> None:
    """The training set, the model-selection subset, and what every checkpoint describes."""
    cfg = run.cfg
    run.train_ds = build_dataset(cfg, subset="train", mode="train")
    # Model selection (the periodic evaluation that picks best.pt) runs on a validation set
    # carved from the training list when there is one; otherwise on the test split, which
    # the run records (selection_subset) so nobody mistakes its best.pt for a clean one.
    run.selection = selection_subset(cfg)
    run.selection_videos = len(build_dataset(cfg, subset=run.selection, mode="clip")) if cfg.eval.every_epochs else 0
    if run.main and cfg.eval.every_epochs:
        if run.selection == "test":
            logger.warning("model selection (periodic evaluation, best.pt) uses the TEST split (%d videos): set "
                           "data.val_fraction (e.g. 0.1) for a validation set carved from the training list",
                           run.selection_videos)
        else:
            logger.info("model selection on a validation set of %d videos (training on %d)", run.selection_videos,
                        len(run.train_ds))
    # What every checkpoint of the run carries besides the weights: the checkpoint alone then
    # rebuilds and feeds the model (predict, eval, export without the YAML or the dataset).
    run.description = checkpoint_metadata(cfg, class_names=class_names(cfg),
                                          normalization=normalization_from_config(cfg))
    # ... and the videos it was trained on: eval refuses a test subset holding any of them
    run.description["train_videos"] = train_fingerprint(cfg)
    run.steps_per_epoch = math.ceil(len(run.train_ds) / (cfg.data.batch_size * dist_utils.world_size()))


def _open_run_folder(run: _Run, *, fresh: bool) -> MetricLogger:
    """Create the output folder and its config.yaml (main process), open the metric log."""
    cfg, out, r = run.cfg, run.out, run.cfg.runtime
    if run.main:  # only now: a run that fails to start leaves no folder behind
        out.mkdir(parents=True, exist_ok=True)
        if fresh or not (out / "config.yaml").is_file():
            save_config(cfg, out / "config.yaml")
        assert run.description is not None  # _attach_data (called before) describes the run
        fingerprint = {k: v for k, v in run.description["train_videos"].items() if k != "videos"}
        atomic_write_text(out / TRAIN_VIDEOS_RECORD, json.dumps(
            {**fingerprint, "root": cfg.data.root, "split": cfg.data.split}, indent=2) + "\n")
    # runtime.loggers (metrics.csv, TensorBoard, W&B, MLflow): the main process only; a resumed
    # run continues the tracker runs recorded in trackers.json
    log = MetricLogger(out, enabled=run.main, trackers=open_trackers(cfg, fresh=fresh) if run.main else ())
    if run.main:
        trainable = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
        logger.info("train: %d videos, %d steps/epoch of %d clips (x%d accumulation, x%d processes), "
                    "%d epochs, %s, %.2fM trainable parameters, output %s", len(run.train_ds), run.steps_per_epoch,
                    cfg.data.batch_size, r.grad_accum_steps, dist_utils.world_size(), cfg.schedule.epochs,
                    run.device, trainable / 1e6, out)
    return log


# --------------------------------------------------------------------------------------
# One epoch: train, evaluate for model selection, save
# --------------------------------------------------------------------------------------


def _run_epoch(run: _Run, epoch: int, log: MetricLogger) -> tuple[dict[str, Any], Any]:
    """Train one epoch, evaluate when due, step the schedule and log the epoch record.

    Returns the record and, on the last epoch when selection is on the test split, the
    evaluation's clip pass (the final evaluation reuses it), else ``None``.
    """
    cfg, r = run.cfg, run.cfg.runtime
    # Every random draw of this epoch derives from (seed, epoch): exact resume.
    seed = epoch_seed(r.seed, epoch)
    _seed_everything(seed + dist_utils.rank())
    generator = torch.Generator().manual_seed(seed)
    # One sampler for 1 and N processes: the epoch's permutation is the same, rank r
    # takes every W-th item of it, and each item's augmentation depends on (seed, item)
    # only, so W processes x batch b see the clips of 1 process x b x W accumulation.
    sampler: DistributedSampler[int] = DistributedSampler(
        run.train_ds, num_replicas=dist_utils.world_size(), rank=dist_utils.rank(), shuffle=True, seed=seed,
        drop_last=False,
    )
    run.train_ds.set_epoch_seed(seed)
    loader = DataLoader(run.train_ds, batch_size=cfg.data.batch_size, sampler=sampler,
                        num_workers=usable_workers(cfg.data.num_workers), generator=generator,
                        pin_memory=run.device.type == "cuda", drop_last=False, persistent_workers=False)
    run.net.train()
    _keep_frozen_bn_eval(run.model, run.frozen)
    stats = train_one_epoch(run.net, loader, run.optimizer, run.scaler, cfg, device=run.device,
                             amp_dtype=run.amp_dtype, epoch=epoch, steps_per_epoch=run.steps_per_epoch, log=log,
                             show=run.main and r.progress)
    record: dict[str, Any] = {"epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"], **stats}

    clip_outputs = None
    every = cfg.eval.every_epochs
    if every and ((epoch + 1) % every == 0 or epoch + 1 == cfg.schedule.epochs):
        report = evaluate_model(run.model, cfg, device=run.device, video_level=False, subset=run.selection,
                                progress=run.main and r.progress)
        record.update(val_clip_top1=report.clip_top1, val_clip_top5=report.clip_top5,
                      selection_subset=run.selection, selection_videos=run.selection_videos)
        if epoch + 1 == cfg.schedule.epochs and run.selection == "test":
            clip_outputs = report.clip_outputs
        # plateau: every rank sees the same report, so every rank reduces alike
        schedule = run.scheduler.lr_lambdas[0]
        assert isinstance(schedule, EpochSchedule)  # build_scheduler's (restore_scheduler checks it too)
        if schedule.observe(report.clip_top1, epochs_done=epoch + 1) and run.main:
            logger.info("schedule plateau: %s clip top-1 has not improved for %d evaluation(s): lr x%g",
                        run.selection, cfg.schedule.patience + 1, cfg.schedule.factor)
    run.scheduler.step()
    if run.main:
        log.log("epoch", epoch=epoch + 1, step=(epoch + 1) * run.steps_per_epoch,
                **{k: v for k, v in record.items() if k != "epoch"})
        logger.info("epoch %d/%d: %s", epoch + 1, cfg.schedule.epochs,
                    ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                              for k, v in record.items() if k != "epoch"))
    return record, clip_outputs


def _save_epoch(
    run: _Run, epoch: int, record: dict[str, Any], last_ckpt: Path | None, best_ckpt: Path | None
) -> tuple[Path | None, Path | None]:
    """Write last.pt (every ``runtime.checkpoint_every`` epochs, the last one, a new best) and
    best.pt (a new best selection top-1), and with ``runtime.checkpoint_format: safetensors`` their
    weights as ``last.safetensors`` / ``best.safetensors``; returns the paths of both .pt files
    (rank 0 writes them)."""
    cfg = run.cfg
    top1 = record.get("val_clip_top1")
    is_best = False
    if top1 is not None and top1 > run.best_top1:
        is_best = True
        run.best_top1 = float(top1)
    saving = (epoch + 1) % cfg.runtime.checkpoint_every == 0 or epoch + 1 == cfg.schedule.epochs or is_best
    if saving:  # every rank knows the paths; rank 0 writes
        last_ckpt = run.ckpt_dir / LAST
        best_ckpt = run.ckpt_dir / BEST if is_best else best_ckpt
    if run.main and saving:
        state = {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "epoch": epoch + 1,
            "best_top1": run.best_top1,
            # processes that trained it: with data.batch_size and grad_accum_steps, the batch
            # of each optimizer step (checked on resume, see check_resume_world_size)
            "world_size": dist_utils.world_size(),
            "rng": capture_rng_state(),
            "config_name": cfg.name,
            "selection_subset": run.selection,
            "selection_videos": run.selection_videos,
            **(run.description or {}),
        }
        last_ckpt = save_checkpoint(state, run.ckpt_dir / LAST)
        if is_best:
            best_ckpt = save_checkpoint(state, run.ckpt_dir / BEST)
        if cfg.runtime.checkpoint_format == "safetensors":  # the weights alone, beside the resumable .pt
            from .publish import write_safetensors

            for ckpt in (last_ckpt, best_ckpt if is_best else None):
                if ckpt is not None:
                    write_safetensors(state["model"], ckpt.with_suffix(".safetensors"),
                                      metadata={"format": "pt", "library": "snl_video", "epoch": str(epoch + 1)})
    return last_ckpt, best_ckpt


# --------------------------------------------------------------------------------------
# Seeds and freezing
# --------------------------------------------------------------------------------------



def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of every generator used in ``epoch`` (0-based)."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**31)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def freeze_groups(model: nn.Module) -> dict[str, list[str]]:
    """The modules ``runtime.freeze_until`` freezes at each point, by dotted name.

    A one-pathway model (3D ResNets, X3D): ``stem`` is ``conv1`` / ``bn1`` and each stage is
    ``layerK``. A two-pathway model (SlowFast: ``slow`` and ``fast``) freezes both pathways
    together: ``stem`` is each pathway's ``conv1`` / ``bn1`` and the stem's lateral
    connection, ``layerK`` each pathway's ``layerK`` and the lateral that follows it. A
    model without these modules (torchvision's MViT / Swin3D / S3D) is an error naming the
    fix, since nothing would be frozen where the user asked.
    """
    pathways = [p for p in ("slow", "fast") if isinstance(getattr(model, p, None), nn.Module)]
    prefixes = [f"{p}." for p in pathways] if len(pathways) == 2 else [""]
    names = {name for name, _ in model.named_modules()}
    laterals = "laterals" if "laterals" in names else None
    groups: dict[str, list[str]] = {
        "stem": [f"{p}{n}" for p in prefixes for n in ("conv1", "bn1") if f"{p}{n}" in names]
        + ([f"{laterals}.stem"] if laterals and f"{laterals}.stem" in names else []),
    }
    for stage in STAGE_NAMES:
        groups[stage] = [f"{p}{stage}" for p in prefixes if f"{p}{stage}" in names] + (
            [f"{laterals}.{stage}"] if laterals and f"{laterals}.{stage}" in names else []
        )
    if not groups["stem"] or not all(groups[stage] for stage in STAGE_NAMES):
        arch = getattr(getattr(model, "spec", None), "arch", None) or type(model).__name__
        raise InvalidValueError(
            f"runtime.freeze_until needs a model with a stem (conv1, bn1) and stages layer1..layer4 (3D ResNets, "
            f"SlowFast, X3D); {arch} has none: leave runtime.freeze_until null, or lower the backbone's learning rate with "
            f"optim.lr_mult (e.g. {{\"head.*\": 10}})"
        )
    return groups


def freeze_until(model: nn.Module, point: str | None) -> list[str]:
    """Freeze every module before ``point`` (``stem``, ``layer1`` .. ``layer4``, ``head``).

    As 3D-ResNets-PyTorch's ``ft_begin_module``: parameters of the earlier modules stop
    training and their BatchNorm layers stay in eval mode (running statistics kept, see
    :func:`_keep_frozen_bn_eval`). Inserted non-local blocks always train: they are new.
    The modules of each point are :func:`freeze_groups`' (both pathways of SlowFast).
    Returns the dotted names of the frozen modules.
    """
    if point is None:
        return []
    order = list(FREEZE_POINTS)
    if point not in order:
        raise InvalidValueError(f"runtime.freeze_until={point!r}: expected one of {order} or null")
    groups = freeze_groups(model)
    frozen = []
    for name in order[: order.index(point)]:
        for module_name in groups.get(name, []):
            for p in model.get_submodule(module_name).parameters():
                p.requires_grad_(False)
            frozen.append(module_name)
    blocks = getattr(model, "nonlocal_blocks", None)
    if blocks is not None:
        for p in blocks.parameters():
            p.requires_grad_(True)
    return frozen


def _keep_frozen_bn_eval(model: nn.Module, frozen: list[str]) -> None:
    for name in frozen:
        for m in model.get_submodule(name).modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def train_one_epoch(
    net: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: ExperimentConfig,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    epoch: int,
    steps_per_epoch: int,
    log: MetricLogger,
    show: bool,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss, train top-1 (%), clips/s, seconds and the
    fraction of the time spent waiting for data."""
    r = cfg.runtime
    accum = r.grad_accum_steps
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing)
    mix = batch_mixer(cfg)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm: float | None = None
    grad_norms: list[float] = []
    total_loss, total_correct, total_clips = 0.0, 0, 0
    data_seconds = 0.0  # time spent waiting for the loader: training is input-bound when it is large
    t0 = time.perf_counter()
    bar = progress_bar(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.schedule.epochs}", enabled=show,
                       unit="step")
    optimizer.zero_grad(set_to_none=True)
    group_start = 0
    fetch = time.perf_counter()
    for step, batch in enumerate(bar):
        data_seconds += time.perf_counter() - fetch
        clip, label, target = _to_device(batch, mix, device, channels_last=r.channels_last)
        # Gradient accumulation: average over the micro-batches of the group (`accum`, fewer in
        # an epoch's last group, which must not be scaled down); DDP syncs only on the last.
        if step % accum == 0:
            group_start = step
        group_size = min(accum, steps_per_epoch - group_start)
        last_micro = step + 1 == group_start + group_size
        sync = getattr(net, "no_sync", None)
        with sync() if (sync is not None and not last_micro) else contextlib.nullcontext():
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = net(clip)
                loss = loss_fn(logits.float(), target)
            _stop_unless_finite(loss, epoch=epoch, step=step, output_dir=r.output_dir)
            scaler.scale(loss / group_size).backward()
        if last_micro:
            if cfg.optim.clip_grad_norm is not None:
                scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16)
                grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.optim.clip_grad_norm))
                grad_norms.append(grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        if step == 0 and r.compile and show:
            logger.info("first step of epoch %d with torch.compile: %.1f s (the run's first includes compilation)",
                        epoch + 1, time.perf_counter() - fetch)
        n = clip.shape[0]
        total_loss += loss.item() * n
        total_correct += int((logits.argmax(1) == label).sum())
        total_clips += n
        elapsed = time.perf_counter() - t0
        rate = total_clips / max(elapsed, 1e-9)
        bar.set_postfix(loss=f"{loss.item():.3f}", clips_s=f"{rate:.1f}", data=f"{100 * data_seconds / elapsed:.0f}%")
        global_step = epoch * steps_per_epoch + step + 1
        if (step + 1) % r.log_every == 0:
            extra = {"grad_norm": grad_norm} if grad_norm is not None else {}
            log.log("step", epoch=epoch + 1, step=global_step, loss=loss.item(), clips_per_s=rate,
                    lr=optimizer.param_groups[0]["lr"], **extra)
        fetch = time.perf_counter()
    elapsed = time.perf_counter() - t0
    return _epoch_stats(total_loss, total_correct, total_clips, data_seconds=data_seconds, elapsed=elapsed,
                        grad_norms=grad_norms, clip_grad_norm=cfg.optim.clip_grad_norm)


def _to_device(batch: dict[str, Any], mix: Any, device: torch.device, *, channels_last: bool) -> tuple[Any, Any, Any]:
    """``(clip, label, target)`` of a loader batch on ``device``; with Mixup/CutMix the target is
    soft ``(B, num_classes)`` and ``label`` its dominant class (what accuracy counts against)."""
    clip = batch["clip"].to(device, non_blocking=True)
    label = torch.as_tensor(batch["label"]).to(device, non_blocking=True)
    target = label
    if mix is not None:
        clip, target = mix(clip, label)
        label = target.argmax(1)
    if channels_last:
        clip = clip.contiguous(memory_format=torch.channels_last_3d)
    return clip, label, target


def _stop_unless_finite(loss: torch.Tensor, *, epoch: int, step: int, output_dir: Any) -> None:
    """Raise :class:`NonFiniteLossError` when the loss is NaN/inf on this or any other process."""
    finite = bool(torch.isfinite(loss))
    if dist_utils.is_distributed():
        # every process must stop together: one that raised alone would leave the
        # others waiting in the gradient all-reduce
        everywhere = dist_utils.all_reduce_max(0.0 if finite else 1.0) == 0.0
    else:
        everywhere = finite
    if not everywhere:
        where = f"loss is {loss.item()}" if not finite else "a non-finite loss on another process"
        raise NonFiniteLossError(
            f"{where} at epoch {epoch + 1}, step {step + 1}: stopping; the last good checkpoint "
            f"is kept in {Path(output_dir) / 'checkpoints'}. Lower optim.lr, use runtime.amp=bf16 or none, "
            f"or check the data for corrupt clips")


def _epoch_stats(
    total_loss: float,
    total_correct: int,
    total_clips: int,
    *,
    data_seconds: float,
    elapsed: float,
    grad_norms: list[float],
    clip_grad_norm: float | None,
) -> dict[str, float]:
    """The epoch record's training figures, summed over every process."""
    # Epoch figures are over every process (a DistributedSampler's padding repeats are
    # counted: it is a training statistic); throughput is the whole job's.
    # The data fraction is the mean over processes of (loader wait / epoch time): near 0 the
    # model is the bottleneck; a large value means more loader workers (data.num_workers) or
    # the prepared format would speed training up.
    totals = dist_utils.all_reduce_sum([total_loss, float(total_correct), float(total_clips),
                                        data_seconds / max(elapsed, 1e-9)])
    loss_sum, correct_sum, clips_sum = totals[0], totals[1], totals[2]
    data_fraction = totals[3] / dist_utils.world_size()
    elapsed = dist_utils.all_reduce_max(elapsed)
    clipping = {}
    if grad_norms:  # the pre-clip global norm (identical on every rank after the all-reduce)
        assert clip_grad_norm is not None  # norms are recorded only when clipping
        clipping = {"grad_norm_mean": float(np.mean(grad_norms)), "grad_norm_max": float(np.max(grad_norms)),
                    "clipped_fraction": float(np.mean([g > clip_grad_norm for g in grad_norms]))}
    return {
        "train_loss": loss_sum / max(clips_sum, 1),
        "train_top1": 100.0 * correct_sum / max(clips_sum, 1),
        "clips_per_s": clips_sum / max(elapsed, 1e-9),
        "epoch_seconds": elapsed,
        "data_fraction": data_fraction,
        **clipping,
    }
