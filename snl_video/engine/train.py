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
processes with batch b and a run with batch b and W-step gradient accumulation take the
same optimizer steps (tested with 2 gloo processes). Epoch records (loss, top-1, clips/s)
are summed over all processes; per-step records are rank 0's micro-batch.

A non-finite loss stops the run with :class:`NonFiniteLossError` before the optimizer
step, so the last checkpoint on disk is the last good one.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..config import STAGE_NAMES, ExperimentConfig, save_config
from . import distributed as dist_utils
from .builders import (build_dataset, build_model_from_config, class_names, normalization_from_config, resolve_recipe,
                       resolve_device, selection_subset)
from .checkpoint import (BEST, LAST, capture_rng_state, checkpoint_metadata, load_checkpoint, restore_rng_state,
                         save_checkpoint)
from .evaluate import evaluate_model
from .preflight import preflight, usable_workers
from .resume import check_resume_config, record_amendment
from .state_fit import load_model_state
from .optim import EpochSchedule, batch_mixer, parameter_groups
from ..errors import SnlVideoError
from ..progress import progress as progress_bar

logger = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "MetricLogger", "TrainResult", "build_optimizer", "build_scheduler",
           "freeze_until", "train", "epoch_seed"]


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
# Logging of metrics: JSONL + CSV always, TensorBoard unless runtime.tensorboard=false
# --------------------------------------------------------------------------------------


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
        if self.writer is not None:
            self.writer.close()


def read_history(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (empty when there is none)."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------
# Setup pieces
# --------------------------------------------------------------------------------------


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of every generator used in ``epoch`` (0-based)."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**31)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def freeze_until(model: nn.Module, point: str | None) -> list[str]:
    """Freeze every top-level module before ``point`` (``stem``, ``layer1`` .. ``layer4``, ``head``).

    As 3D-ResNets-PyTorch's ``ft_begin_module``: parameters of the earlier modules stop
    training and their BatchNorm layers stay in eval mode (running statistics kept, see
    :func:`_keep_frozen_bn_eval`). Inserted non-local blocks always train: they are new.
    Returns the names of the frozen modules.
    """
    if point is None:
        return []
    order = ["stem", *STAGE_NAMES, "head"]
    if point not in order:
        raise ValueError(f"runtime.freeze_until={point!r}: expected one of {order} or null")
    stem = [n for n in ("conv1", "bn1") if hasattr(model, n)]
    groups = {"stem": stem, **{s: [s] for s in STAGE_NAMES}}
    frozen = []
    for name in order[: order.index(point)]:
        for module_name in groups.get(name, []):
            for p in getattr(model, module_name).parameters():
                p.requires_grad_(False)
            frozen.append(module_name)
    blocks = getattr(model, "nonlocal_blocks", None)
    if blocks is not None:
        for p in blocks.parameters():
            p.requires_grad_(True)
    return frozen


def _keep_frozen_bn_eval(model: nn.Module, frozen: list[str]) -> None:
    for name in frozen:
        for m in getattr(model, name).modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def build_optimizer(model: nn.Module, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    """SGD (the paper) or AdamW over the trainable parameters, in the groups of ``optim.lr_mult``
    and ``optim.no_weight_decay_on`` (see :func:`~snl_video.engine.optim.parameter_groups`;
    logged on the main process)."""
    params, groups = parameter_groups(model, cfg)
    if dist_utils.is_main():
        for i, info in enumerate(groups):
            logger.info("optimizer group %d: %s", i, info.describe())
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov)
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ExperimentConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: step (÷10 every 40 epochs by default), cosine, multistep or plateau,
    after an optional linear warm-up (:class:`~snl_video.engine.optim.EpochSchedule`; its
    plateau state is saved in the scheduler's state dict, so resume is exact)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, EpochSchedule(cfg))


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

    Args:
        resume: ``True`` continues from ``<output_dir>/checkpoints/last.pt``; a path continues
            from that checkpoint; ``False`` starts fresh (an existing run in ``output_dir``
            is an error, so nothing is overwritten by accident).
        stop_after_epochs: stop after this many epochs *of this call* (as if killed after
            the epoch's checkpoint): tests and time-boxed jobs resume later.
    """
    # ---- setup --------------------------------------------------------------------------
    # The run's record is the model it trains: what the registry entry implies, the block
    # placement and the normalisation are written out once, here, and recorded below.
    resolved = resolve_recipe(cfg)
    cfg = resolved.config
    for line in resolved.describe():
        logger.info("recipe resolved: %s", line)
    r = cfg.runtime
    out = Path(r.output_dir)
    ckpt_dir = out / "checkpoints"
    device = resolve_device(r.device)
    started_pg = dist_utils.setup_distributed(device)
    main = dist_utils.is_main()
    if r.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    _seed_everything(epoch_seed(r.seed, -1) + dist_utils.rank())

    resume_path: Path | None = None
    if resume is True:
        resume_path = ckpt_dir / LAST
        if not resume_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {resume_path}; start without --resume")
    elif resume:
        resume_path = Path(resume)
    elif main and (ckpt_dir / LAST).exists():
        raise ValueError(f"{out} already holds a run (checkpoints/{LAST}); pass --resume to continue it, "
                         f"or set runtime.output_dir to a new folder")
    if resume_path is not None and not resume_path.is_file():
        raise FileNotFoundError(f"--resume-from {resume_path}: no such checkpoint file")
    # The run record is never rewritten: on resume, keys that cannot change are an error
    # (before anything is built or written); allowed changes are recorded beside it.
    resume_changes = check_resume_config(cfg, out, checkpoint=resume_path) if resume_path is not None else []
    # Every cheap check (model, placement, data, labels) before weights, checkpoints or folders.
    preflight(cfg, subsets=("train", "test"))
    dist_utils.barrier()

    model = build_model_from_config(cfg, load_weights=resume_path is None)
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
            raise ValueError("runtime.sync_bn=true needs CUDA devices (PyTorch's SyncBatchNorm); this run is on "
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

    start_epoch, best_top1 = 0, -1.0
    if resume_path is not None:
        state = load_checkpoint(resume_path)
        load_model_state(model, state, checkpoint=resume_path)  # one-line error for another recipe's file
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        start_epoch, best_top1 = int(state["epoch"]), float(state.get("best_top1", -1.0))
        logger.info("resumed from %s after epoch %d", resume_path, start_epoch)
        if main and resume_changes and (out / "config.yaml").is_file():
            record_amendment(cfg, out, resume_changes, resumed_after_epoch=start_epoch)

    train_ds = build_dataset(cfg, subset="train", mode="train")
    # Model selection (the periodic evaluation that picks best.pt) runs on a validation set
    # carved from the training list when there is one; otherwise on the test split, which
    # the run records (selection_subset) so nobody mistakes its best.pt for a clean one.
    selection = selection_subset(cfg)
    selection_videos = len(build_dataset(cfg, subset=selection, mode="clip")) if cfg.eval.every_epochs else 0
    if main and cfg.eval.every_epochs:
        if selection == "test":
            logger.warning("model selection (periodic evaluation, best.pt) uses the TEST split (%d videos): set "
                           "data.val_fraction (e.g. 0.1) for a validation set carved from the training list",
                           selection_videos)
        else:
            logger.info("model selection on a validation set of %d videos (training on %d)", selection_videos,
                        len(train_ds))
    # What every checkpoint of the run carries besides the weights: the checkpoint alone then
    # rebuilds and feeds the model (predict, eval, export without the YAML or the dataset).
    description = checkpoint_metadata(cfg, class_names=class_names(cfg), normalization=normalization_from_config(cfg))
    # ... and the videos it was trained on: eval refuses a test subset holding any of them
    from ..fileio import atomic_write_text
    from .records import TRAIN_VIDEOS_RECORD, train_fingerprint

    description["train_videos"] = train_fingerprint(cfg)
    batch_size = cfg.data.batch_size
    accum = r.grad_accum_steps
    steps_per_epoch = math.ceil(len(train_ds) / (batch_size * dist_utils.world_size()))
    if main:  # only now: a run that fails to start leaves no folder behind
        out.mkdir(parents=True, exist_ok=True)
        if resume_path is None or not (out / "config.yaml").is_file():
            save_config(cfg, out / "config.yaml")
        fingerprint = {k: v for k, v in description["train_videos"].items() if k != "videos"}
        atomic_write_text(out / TRAIN_VIDEOS_RECORD, json.dumps(
            {**fingerprint, "root": cfg.data.root, "split": cfg.data.split}, indent=2) + "\n")
    log = MetricLogger(out, enabled=main, tensorboard=r.tensorboard)
    if main:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("train: %d videos, %d steps/epoch of %d clips (x%d accumulation, x%d processes), "
                    "%d epochs, %s, %.2fM trainable parameters, output %s", len(train_ds), steps_per_epoch,
                    batch_size, accum, dist_utils.world_size(), cfg.schedule.epochs, device, trainable / 1e6, out)

    # ---- train --------------------------------------------------------------------------
    history: list[dict[str, Any]] = []
    last_ckpt: Path | None = ckpt_dir / LAST if resume_path is not None else None
    best_ckpt: Path | None = ckpt_dir / BEST if (ckpt_dir / BEST).exists() else None
    epochs_this_call = 0
    final_clip_outputs = None
    try:
        for epoch in range(start_epoch, cfg.schedule.epochs):
            # Every random draw of this epoch derives from (seed, epoch): exact resume.
            seed = epoch_seed(r.seed, epoch)
            _seed_everything(seed + dist_utils.rank())
            generator = torch.Generator().manual_seed(seed)
            # One sampler for 1 and N processes: the epoch's permutation is the same, rank r
            # takes every W-th item of it, and each item's augmentation depends on (seed, item)
            # only, so W processes x batch b see the clips of 1 process x b x W accumulation.
            sampler = DistributedSampler(train_ds, num_replicas=dist_utils.world_size(), rank=dist_utils.rank(),
                                         shuffle=True, seed=seed, drop_last=False)
            train_ds.set_epoch_seed(seed)
            loader = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, num_workers=usable_workers(cfg.data.num_workers),
                                generator=generator, pin_memory=device.type == "cuda", drop_last=False,
                                persistent_workers=False)
            net.train()
            _keep_frozen_bn_eval(model, frozen)
            stats = _train_one_epoch(net, loader, optimizer, scaler, cfg, device=device, amp_dtype=amp_dtype,
                                     epoch=epoch, steps_per_epoch=steps_per_epoch, log=log, show=main and r.progress)
            lr = optimizer.param_groups[0]["lr"]
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, **stats}

            every = cfg.eval.every_epochs
            if every and ((epoch + 1) % every == 0 or epoch + 1 == cfg.schedule.epochs):
                report = evaluate_model(model, cfg, device=device, video_level=False, subset=selection,
                                        progress=main and r.progress)
                record.update(val_clip_top1=report.clip_top1, val_clip_top5=report.clip_top5,
                              selection_subset=selection, selection_videos=selection_videos)
                if epoch + 1 == cfg.schedule.epochs and selection == "test":
                    final_clip_outputs = report.clip_outputs  # the final evaluation's clip pass
                # plateau: every rank sees the same report, so every rank reduces alike
                if scheduler.lr_lambdas[0].observe(report.clip_top1, epochs_done=epoch + 1) and main:
                    logger.info("schedule plateau: %s clip top-1 has not improved for %d evaluation(s): lr x%g",
                                selection, cfg.schedule.patience + 1, cfg.schedule.factor)
            scheduler.step()
            history.append(record)
            if main:
                log.log("epoch", epoch=epoch + 1, step=(epoch + 1) * steps_per_epoch,
                        **{k: v for k, v in record.items() if k != "epoch"})
                logger.info("epoch %d/%d: %s", epoch + 1, cfg.schedule.epochs,
                            ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                                      for k, v in record.items() if k != "epoch"))

            # ---- save ---------------------------------------------------------------------
            top1 = record.get("val_clip_top1")
            is_best = top1 is not None and top1 > best_top1
            if is_best:
                best_top1 = float(top1)
            saving = (epoch + 1) % r.checkpoint_every == 0 or epoch + 1 == cfg.schedule.epochs or is_best
            if saving:  # every rank knows the paths; rank 0 writes
                last_ckpt = ckpt_dir / LAST
                best_ckpt = ckpt_dir / BEST if is_best else best_ckpt
            if main and saving:
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch + 1,
                    "best_top1": best_top1,
                    "rng": capture_rng_state(),
                    "config_name": cfg.name,
                    "selection_subset": selection,
                    "selection_videos": selection_videos,
                    **description,
                }
                last_ckpt = save_checkpoint(state, ckpt_dir / LAST)
                if is_best:
                    best_ckpt = save_checkpoint(state, ckpt_dir / BEST)
            dist_utils.barrier()
            epochs_this_call += 1
            if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs:
                logger.info("stopping after %d epoch(s) of this call (resume with --resume)", epochs_this_call)
                break
    finally:
        # ---- cleanup ------------------------------------------------------------------------
        log.close()
        if started_pg:
            dist_utils.cleanup_distributed()
    done = start_epoch + epochs_this_call
    return TrainResult(out, done, history, last_ckpt, best_ckpt, final_clip_outputs=final_clip_outputs)


def _train_one_epoch(
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
        clip = batch["clip"].to(device, non_blocking=True)
        label = torch.as_tensor(batch["label"]).to(device, non_blocking=True)
        target = label
        if mix is not None:
            # soft targets (B, num_classes); accuracy below counts against the dominant label
            clip, target = mix(clip, label)
            label = target.argmax(1)
        if r.channels_last:
            clip = clip.contiguous(memory_format=torch.channels_last_3d)
        # Gradient accumulation: average over the micro-batches of the group (`accum`, fewer in
        # an epoch's last group, which must not be scaled down); DDP syncs only on the last.
        if step % accum == 0:
            group_start = step
        group_size = min(accum, steps_per_epoch - group_start)
        last_micro = step + 1 == group_start + group_size
        sync = getattr(net, "no_sync", None)
        ctx = sync() if (sync is not None and not last_micro) else _nullcontext()
        with ctx:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = net(clip)
                loss = loss_fn(logits.float(), target)
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
                    f"is kept in {Path(r.output_dir) / 'checkpoints'}. Lower optim.lr, use runtime.amp=bf16 or none, "
                    f"or check the data for corrupt clips")
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
    # Epoch figures are over every process (a DistributedSampler's padding repeats are
    # counted: it is a training statistic); throughput is the whole job's.
    # The data fraction is the mean over processes of (loader wait / epoch time): near 0 the
    # model is the bottleneck; a large value means more loader workers (data.num_workers) or
    # the prepared format would speed training up.
    totals = dist_utils.all_reduce_sum([total_loss, float(total_correct), float(total_clips),
                                        data_seconds / max(elapsed, 1e-9)])
    total_loss, total_correct, total_clips = totals[0], totals[1], totals[2]
    data_fraction = totals[3] / dist_utils.world_size()
    elapsed = dist_utils.all_reduce_max(elapsed)
    clipping = {}
    if grad_norms:  # the pre-clip global norm (identical on every rank after the all-reduce)
        clipping = {"grad_norm_mean": float(np.mean(grad_norms)), "grad_norm_max": float(np.max(grad_norms)),
                    "clipped_fraction": float(np.mean([g > cfg.optim.clip_grad_norm for g in grad_norms]))}
    return {
        "train_loss": total_loss / max(total_clips, 1),
        "train_top1": 100.0 * total_correct / max(total_clips, 1),
        "clips_per_s": total_clips / max(elapsed, 1e-9),
        "epoch_seconds": elapsed,
        "data_fraction": data_fraction,
        **clipping,
    }


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
