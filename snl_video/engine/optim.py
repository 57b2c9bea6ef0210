"""The fine-tuning knobs of the optimizer and schedule: parameter groups, schedules, Mixup/CutMix.

* :func:`parameter_groups` splits the trainable parameters by learning-rate multiplier
  (``optim.lr_mult``: fnmatch patterns of parameter names) and by weight decay
  (``optim.no_weight_decay_on``: norms, biases), so a new head and freshly inserted
  (identity-initialised) non-local blocks can learn faster than the pretrained backbone.
* :class:`EpochSchedule` is the per-epoch learning-rate factor of every schedule kind
  (step, cosine, multistep, plateau) after an optional linear warm-up. It is a callable
  *object* for :class:`torch.optim.lr_scheduler.LambdaLR`, whose ``state_dict`` saves the
  ``__dict__`` of such objects: the plateau's state (best metric, bad evaluations, current
  reduction) therefore travels in the checkpoint and ``--resume`` stays exact. Its
  ``__dict__`` holds plain numbers only, so the checkpoint still reads with
  ``torch.load(weights_only=True)``.
* :func:`build_optimizer` and :func:`build_scheduler` turn ``optim`` and ``schedule`` into
  the torch optimizer (over those groups) and scheduler (over that schedule) of a run.
* :func:`batch_mixer` is batch-level Mixup / CutMix from ``torchvision.transforms.v2`` on
  ``(B, C, T, H, W)`` clips: the clip batch is passed as a ``tv_tensors.Video`` (5 dims,
  checked by torchvision), Mixup blends whole clips and CutMix pastes one box in the last
  two dims (H, W) — the same box on every frame and channel.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError
from ..config import ExperimentConfig
from . import distributed as dist_utils

logger = logging.getLogger(__name__)

__all__ = ["ParamGroupInfo", "parameter_groups", "EpochSchedule", "batch_mixer", "build_optimizer", "build_scheduler",
           "restore_scheduler", "NORM_TYPES"]

#: Module types whose parameters ``no_weight_decay_on: [norm]`` exempts from weight decay.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm,
)


@dataclass(frozen=True)
class ParamGroupInfo:
    """One optimizer parameter group, for the start-of-run log."""

    lr_mult: float
    weight_decay: float
    pattern: str | None
    num_tensors: int
    num_parameters: int
    lr: float

    def describe(self) -> str:
        source = f"lr_mult {self.pattern!r}" if self.pattern is not None else "default"
        return (f"{self.num_tensors} tensors / {self.num_parameters / 1e6:.3f}M parameters: lr {self.lr:.4g} "
                f"(x{self.lr_mult:g}, {source}), weight decay {self.weight_decay:g}")


def _top_level_modules(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_children() if any(True for _ in m.parameters())]


def parameter_groups(model: nn.Module, cfg: ExperimentConfig) -> tuple[list[dict[str, Any]], list[ParamGroupInfo]]:
    """The optimizer's parameter groups for ``cfg.optim`` over ``model``'s trainable parameters.

    Each parameter takes the multiplier of the first ``optim.lr_mult`` pattern (in the order
    given) that matches its name (``fnmatch``, e.g. ``fc.*``, ``nonlocal_blocks.*``), else 1;
    its weight decay is 0 when it belongs to a normalisation layer (``norm``) or is a bias
    (``bias``) and that is listed in ``optim.no_weight_decay_on``. Parameters with equal
    (multiplier, decay) share a group; groups come in first-appearance order, so the same
    config always gives the same groups (what resuming an optimizer state needs).

    Raises:
        ValueError: a pattern matches no trainable parameter (the message lists the model's
            top-level modules, from which parameter names start), or only parameters an
            earlier pattern decides.
    """
    o = cfg.optim
    norm_params: set[int] = set()
    if "norm" in o.no_weight_decay_on:
        for module in model.modules():
            if isinstance(module, NORM_TYPES):
                norm_params.update(id(p) for p in module.parameters(recurse=False))
    patterns = list(o.lr_mult.items())
    used = {pattern: 0 for pattern, _ in patterns}  # parameters each pattern decides
    matched = {pattern: 0 for pattern, _ in patterns}  # parameters each pattern matches
    groups: dict[tuple[float, float, str | None], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        mult, which = 1.0, None
        for pattern, value in patterns:
            if fnmatch.fnmatchcase(name, pattern):
                matched[pattern] += 1
                if which is None:
                    mult, which = float(value), pattern
                    used[pattern] += 1
        exempt = id(param) in norm_params or ("bias" in o.no_weight_decay_on and name.endswith(".bias"))
        decay = 0.0 if exempt else o.weight_decay
        groups.setdefault((mult, decay, which), []).append(param)
    shadowed = [pattern for pattern in used if used[pattern] == 0 and matched[pattern] > 0]
    if shadowed:
        raise InvalidValueError(f"optim.lr_mult: pattern(s) {shadowed} only match parameters that an earlier pattern "
                         f"already decides (the first matching pattern wins): reorder or remove them")
    unused = [pattern for pattern, count in matched.items() if count == 0]
    if unused:
        raise InvalidValueError(
            f"optim.lr_mult: pattern(s) {unused} match no trainable parameter; parameter names start with a "
            f"top-level module: {', '.join(_top_level_modules(model))} (e.g. 'fc.*', 'nonlocal_blocks.*', "
            f"'layer4.*'; frozen parameters are not matched)")
    param_groups, infos = [], []
    for (mult, decay, which), params in groups.items():
        lr = o.lr * mult
        param_groups.append({"params": params, "lr": lr, "weight_decay": decay})
        infos.append(ParamGroupInfo(mult, decay, which, len(params), sum(p.numel() for p in params), lr))
    return param_groups, infos


class EpochSchedule:
    """The learning-rate factor of epoch ``e`` (0-based) for :class:`~torch.optim.lr_scheduler.LambdaLR`.

    Warm-up (``warmup_epochs`` > 0) rises linearly from ``warmup_start_factor`` to 1; after
    it, ``step`` and ``cosine`` count epochs from the end of the warm-up, ``multistep``
    milestones are absolute epoch counts, and ``plateau`` applies the reduction accumulated
    by :meth:`observe`. Only plain numbers live in ``__dict__`` (saved by LambdaLR).

    The schedule's *shape* (kind, length, warm-up, steps, floor, ...) comes from the config;
    its *state* (:data:`STATE_KEYS`, the plateau's) from training. On resume only the state
    is taken from the checkpoint (see :func:`restore_scheduler`), so a changed
    ``schedule.epochs`` is followed.
    """

    #: The attributes that training changes (the plateau's); every other one is the shape.
    STATE_KEYS: tuple[str, ...] = ("plateau_scale", "best", "bad_evaluations", "reductions")

    def __init__(self, cfg: ExperimentConfig) -> None:
        s = cfg.schedule
        self.kind = str(s.kind)
        self.epochs = int(s.epochs)
        self.warmup_epochs = int(s.warmup_epochs)
        self.warmup_start_factor = float(s.warmup_start_factor)
        self.step_size = int(s.step_size)
        self.gamma = float(s.gamma)
        self.milestones = [int(m) for m in s.milestones]
        self.floor = float(s.min_lr) / float(cfg.optim.lr)
        self.patience = int(s.patience)
        self.factor = float(s.factor)
        # plateau state (mode max, ReduceLROnPlateau's relative threshold 1e-4)
        self.plateau_scale = 1.0
        self.best = -math.inf
        self.bad_evaluations = 0
        self.reductions = 0

    def __call__(self, epoch: int) -> float:
        warm = self.warmup_epochs
        if epoch < warm:
            return self.warmup_start_factor + (1.0 - self.warmup_start_factor) * epoch / warm
        if self.kind == "step":
            return self.gamma ** ((epoch - warm) // self.step_size)
        if self.kind == "multistep":
            return self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        if self.kind == "plateau":
            return self.plateau_scale
        span = max(1, self.epochs - warm)
        progress = (epoch - warm) / span
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def observe(self, metric: float, *, epochs_done: int) -> bool:
        """Feed the held-out metric after ``epochs_done`` epochs (plateau only; higher is
        better); returns whether the learning rate was reduced. Evaluations during the
        warm-up are not counted."""
        if self.kind != "plateau" or epochs_done <= self.warmup_epochs:
            return False
        improved = self.best == -math.inf or metric > self.best + abs(self.best) * 1e-4
        if improved:
            self.best, self.bad_evaluations = float(metric), 0
            return False
        self.bad_evaluations += 1
        if self.bad_evaluations <= self.patience:
            return False
        new = max(self.plateau_scale * self.factor, self.floor)
        self.bad_evaluations = 0
        if new >= self.plateau_scale:
            return False
        self.plateau_scale = new
        self.reductions += 1
        return True


def batch_mixer(cfg: ExperimentConfig) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
    """``(clips, labels) -> (mixed clips, soft labels (B, num_classes))`` for ``data.mixup_alpha`` /
    ``data.cutmix_alpha`` (``None`` when both are 0). Draws from torch's global generator,
    which the training loop seeds per epoch (exact resume)."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    d = cfg.data
    n = cfg.model.num_classes
    choices = []
    if d.mixup_alpha > 0:
        choices.append(v2.MixUp(alpha=d.mixup_alpha, num_classes=n))
    if d.cutmix_alpha > 0:
        choices.append(v2.CutMix(alpha=d.cutmix_alpha, num_classes=n))
    if not choices:
        return None
    transform = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)

    def mix(clips: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        # (B, C, T, H, W) as a Video: torchvision checks the 5 dims; CutMix's box is on the
        # last two (H, W), so every frame and channel of a clip gets the same box.
        out, soft = transform(tv_tensors.Video(clips), labels)
        return out.as_subclass(Tensor), soft

    return mix


def build_optimizer(model: nn.Module, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    """SGD (the paper) or AdamW over the trainable parameters, in the groups of ``optim.lr_mult``
    and ``optim.no_weight_decay_on`` (see :func:`parameter_groups`; logged on the main process)."""
    params, groups = parameter_groups(model, cfg)
    if dist_utils.is_main():
        for i, info in enumerate(groups):
            logger.info("optimizer group %d: %s", i, info.describe())
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov)
    return torch.optim.AdamW(params, lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps, weight_decay=o.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ExperimentConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule: step (÷10 every 40 epochs by default), cosine, multistep or plateau,
    after an optional linear warm-up (:class:`EpochSchedule`; its
    plateau state is saved in the scheduler's state dict, so resume is exact)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, EpochSchedule(cfg))


def restore_scheduler(scheduler: torch.optim.lr_scheduler.LambdaLR, state: dict[str, Any],
                      cfg: ExperimentConfig) -> None:
    """Load a checkpoint's scheduler ``state`` into ``scheduler`` for a resume under ``cfg``.

    The rule: **the schedule is the one a fresh run of ``cfg`` would follow, continued from the
    resume point.** After ``k`` finished epochs, epoch ``e`` (0-based, ``e >= k``) trains at
    ``base_lr x f(e)``, where ``f`` is :class:`EpochSchedule` built from ``cfg`` — with the
    *current* ``schedule.epochs`` — and only the training state (the epoch count ``k``, the
    plateau's best / bad evaluations / reduction, :data:`EpochSchedule.STATE_KEYS`) comes from
    the checkpoint. So a cosine run lengthened from 2 to 4 epochs trains its epochs 3 and 4 at
    the factors a fresh 4-epoch cosine run has there (0.5 and 0.146), and no epoch before the
    end of a schedule is at lr 0 (a cosine factor reaches ``min_lr`` only at the end of the
    new length, which no epoch trains at). Without a length change the result equals the
    saved state (exact resume). ``step``, ``multistep`` and warm-up do not depend on the
    length, so they continue unchanged; ``plateau`` keeps its reduction.

    The learning rate of each optimizer group is set to the factor of the next epoch: the
    optimizer state restored before holds the rate the *old* schedule computed for it (for a
    finished cosine run, ``min_lr``).
    """
    scheduler.load_state_dict(state)
    fresh = vars(EpochSchedule(cfg))
    shape = {k: v for k, v in fresh.items() if k not in EpochSchedule.STATE_KEYS}
    for schedule in scheduler.lr_lambdas:
        if not isinstance(schedule, EpochSchedule):  # pragma: no cover - build_scheduler always makes one
            raise TypeError(f"restore_scheduler: expected an EpochSchedule, got {type(schedule).__name__}")
        vars(schedule).update(shape)
    epoch = scheduler.last_epoch
    lrs = [base * schedule(epoch) for base, schedule in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
