"""Typed experiment configuration: YAML + dotted overrides → validated :class:`ExperimentConfig`.

One function, :func:`load_config`, turns a recipe into typed objects before anything heavy
runs. It reads the YAML (which may include a base file through ``defaults:``), applies
``key=value`` overrides from the command line, and validates the result against the schema
below, collecting *every* problem (unknown keys with the closest valid name, wrong types,
out-of-range values, unknown choices, invalid non-local options) into one
:class:`ConfigError`, so a user fixes a recipe in one pass instead of one crash at a time.

The defaults are the paper's UCF-101 fine-tuning recipe (Zhu et al., ICCV 2021, following
3D-ResNets-PyTorch): SGD with momentum 0.9 and weight decay 1e-4, learning rate 0.01
divided by 10 every 40 epochs, 100 epochs, 16-frame 112x112 clips.

Paths in a config (``data.root``, a ``pretrained`` file, ``runtime.output_dir``) are taken
relative to the working directory, as on the command line; only ``defaults:`` includes
are relative to the including file.

Strings live only here, at the boundary: choices are ``Literal`` types checked against
their valid values, and the non-local kind and options are checked with
:func:`snl_video.nonlocal_blocks.nonlocal_options` and a construction on the meta device.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from .fileio import atomic_write_text
from .errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "ModelConfig",
    "NonLocalConfig",
    "OptimConfig",
    "PretrainedConfig",
    "RuntimeConfig",
    "ScheduleConfig",
    "STAGE_NAMES",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "load_yaml_with_includes",
    "save_config",
]

#: Stage names of the 3D ResNet family, in order (torchvision's naming): non-local
#: placements and ``runtime.freeze_until`` use them.
STAGE_NAMES: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4")
FREEZE_POINTS: tuple[str, ...] = ("stem", *STAGE_NAMES, "head")
# The paper's stage names (res2 = layer1, ...), accepted in non-local positions.
STAGE_ALIASES: tuple[str, ...] = ("res2", "res3", "res4", "res5")

#: Keys that name a base YAML file to include (resolved relative to the including file).
INCLUDE_KEYS: tuple[str, ...] = ("defaults", "base")

Backend = Literal["prepared", "pyav", "decord", "torchcodec"]
TrainCrop = Literal["multiscale", "random_resized"]
OptimizerName = Literal["sgd", "adamw"]
ScheduleKind = Literal["step", "cosine", "multistep", "plateau"]
Device = Literal["auto", "cpu", "cuda"]
Amp = Literal["none", "bf16", "fp16"]
FreezePoint = Literal["stem", "layer1", "layer2", "layer3", "layer4", "head"]
ClipProtocol = Literal["center"]
NoWeightDecayOn = Literal["norm", "bias"]
CheckpointStage = Literal["layer1", "layer2", "layer3", "layer4"]
VideoReduce = Literal["mean_prob", "mean_logit"]
#: A dataset source's name: any registered source (:func:`snl_video.data.list_sources`), checked there.
DatasetName = str


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class ConfigError(InvalidValueError):
    """Every problem found in a configuration, as ``(dotted_key, message)`` pairs.

    A project :class:`~snl_video.errors.InvalidValueError` (so also a ``ValueError``): the CLI
    reports it as one line.
    """

    def __init__(self, errors: Sequence[tuple[str, str]], source: str | None = None) -> None:
        self.errors: list[tuple[str, str]] = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"{len(self.errors)} problem(s){where}:"]
        lines += [f"  {key or '<top level>'}: {message}" for key, message in self.errors]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles intact (e.g. raised in a worker process), not as a message string.
        return (type(self), (self.errors, self.source))


class _Errors:
    """Collects ``(key, message)`` pairs while validation continues."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))


def _suggest(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------
# Sequences are stored as tuples and every section is frozen, so a config passed down the
# engine cannot be changed behind the caller's back (option dicts are the one mutable part).


@dataclass(frozen=True)
class ModelConfig:
    """The network: a name from the model registry, the class count and head dropout."""

    name: str = "r3d50"
    num_classes: int = 101
    #: 3D-ResNets-PyTorch (whose recipe the paper follows) has no dropout before the head.
    dropout: float = 0.0
    #: The model's constructor options (``model_entry(name).options()``), e.g.
    #: ``{widen_factor: 0.5}`` for the small demo network; unknown ones fail at build time.
    options: dict[str, Any] = field(default_factory=dict)

    def check(self, errors: _Errors, prefix: str) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.+-]*", self.name):
            errors.add(f"{prefix}.name", f"must be a model name such as 'r3d50', got {self.name!r}")
        if self.num_classes < 2:
            errors.add(f"{prefix}.num_classes", f"must be at least 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            errors.add(f"{prefix}.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class NonLocalConfig:
    """Non-local blocks to insert into the backbone.

    ``positions`` maps a stage (``layer1`` .. ``layer4``, or ``res2`` .. ``res5``) to 0-based
    residual-block indices; a block is inserted *after* each listed residual block (the
    convention of :mod:`snl_video.models.placement`). ``{layer3: [4]}`` in a 50-layer network
    (6 blocks in ``layer3`` = res4) is the paper's placement: one block in res4 before its
    last residual block. ``None`` means the model's default placement (that one).
    The indices are checked against each stage's depth by the models layer; the kind and
    its options are checked here.
    """

    kind: str = "snl"
    options: dict[str, Any] = field(default_factory=dict)
    positions: dict[str, tuple[int, ...]] | None = None

    def check(self, errors: _Errors, prefix: str) -> None:
        _check_nonlocal_kind_and_options(self.kind, self.options, errors, prefix)
        if self.positions is not None:
            if not self.positions:
                errors.add(f"{prefix}.positions", "is empty: leave it out (null) for the default placement, or list blocks")
            for stage, indices in self.positions.items():
                key = f"{prefix}.positions.{stage}"
                if stage not in STAGE_NAMES + STAGE_ALIASES:
                    valid = STAGE_NAMES + STAGE_ALIASES
                    errors.add(key, f"unknown stage {stage!r}; valid stages: {', '.join(valid)}{_suggest(stage, valid)}")
                if any(i < 0 for i in indices):
                    errors.add(key, f"block indices are 0-based and non-negative, got {list(indices)}")
                if len(set(indices)) != len(indices):
                    errors.add(key, f"repeats a block index: {list(indices)}")


@dataclass(frozen=True)
class PretrainedConfig:
    """Initial weights: a registry name (``snl-video weights list``) or a checkpoint path.

    ``ignore`` holds fnmatch patterns of checkpoint keys not to load (besides the head,
    which is replaced whenever the class count differs).
    """

    source: str
    ignore: tuple[str, ...] = ()

    def check(self, errors: _Errors, prefix: str) -> None:
        from .weights import list_weights

        names = list_weights()
        if self.source in names:
            return
        if not Path(self.source).expanduser().is_file():
            errors.add(
                f"{prefix}.source",
                f"{self.source!r} is neither a registry name nor an existing file"
                f"{_suggest(self.source, names)} (registry names: `snl-video weights list`)",
            )


@dataclass(frozen=True)
class DataConfig:
    """The prepared dataset and how clips are drawn from it.

    ``root`` is the directory written by ``snl-video prepare`` (``backend: prepared``) or the
    UCF-101 video tree (a decoding backend; then ``splits_dir`` holds the official split
    files). Train crops follow 3D-ResNets-PyTorch: a square of side ``scale x short side``
    for a random scale from ``train_scales``, at a random position, resized to ``crop_size``.
    """

    root: str = "data/ucf101_prepared"
    split: int | str = 1
    backend: Backend = "prepared"
    splits_dir: str | None = None
    num_frames: int = 16
    sampling_stride: int = 1
    crop_size: int = 112
    train_crop: TrainCrop = "multiscale"
    train_scales: tuple[float, ...] = (1.0, 2**-0.25, 2**-0.5, 2**-0.75, 0.5)
    horizontal_flip: bool = True
    batch_size: int = 32
    num_workers: int = 4
    max_decode_failure_fraction: float = 0.0
    #: Input normalisation. ``None``: from the pretrained registry entry when ``pretrained``
    #: names one, else the Kinetics statistics of 3D-ResNets-PyTorch on a [0, 1] scale.
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    #: The dataset source the prepared directory holds (``snl-video prepare <dataset>``); a
    #: directory of another source is refused. UCF-101 / HMDB-51 have splits 1-3; a folder or
    #: list has the split name it was prepared with (``1`` unless ``--split-name``).
    dataset: DatasetName = "ucf101"
    #: Fraction of each class's training videos held out (by group: UCF-101 ``gXX``, HMDB-51
    #: source video) as the validation set that the periodic evaluation and ``best.pt`` use.
    #: 0 keeps the old protocol: model selection on the test split (recorded and logged).
    val_fraction: float = 0.0
    #: Batch-level Mixup / CutMix (``torchvision.transforms.v2``) with Beta(alpha, alpha); 0 is off.
    #: With both > 0 each batch gets one of the two at random. Train accuracy is then counted
    #: against each clip's dominant label.
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def check(self, errors: _Errors, prefix: str) -> None:
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                errors.add(f"{prefix}.{name}", f"must be >= 0 (0: off), got {getattr(self, name)}")
        if not self.root:
            errors.add(f"{prefix}.root", "is empty: give the prepared dataset directory")
        from .data.sources import registered_sources

        sources = {s.name: s for s in registered_sources()}  # the registry is the one list of sources
        known = self.dataset in sources
        if not known:
            errors.add(f"{prefix}.dataset", f"unknown dataset {self.dataset!r}; valid choices: "
                                            f"{', '.join(repr(n) for n in sources)}")
        split_names = sources[self.dataset].split_names if known else None
        if split_names is not None:  # an official layout: its split names (digits are ints in YAML)
            if self.split not in [int(n) if n.isdigit() else n for n in split_names]:
                names = ", ".join(split_names[:-1]) + f" and {split_names[-1]}" if len(split_names) > 1 else split_names[0]
                errors.add(f"{prefix}.split", f"{sources[self.dataset].title} has splits {names}, got {self.split!r}")
        elif known and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(self.split)):
            errors.add(f"{prefix}.split", f"must be the split name the {self.dataset} dataset was prepared with "
                                          f"(default '1'), got {self.split!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            errors.add(f"{prefix}.val_fraction", f"must be in [0, 1) (0: select on the test split), got {self.val_fraction}")
        if self.backend != "prepared" and known and split_names is None:
            errors.add(f"{prefix}.backend", f"decoding the original files needs official split files (ucf101, hmdb51); "
                                            f"prepare the {self.dataset} dataset and use backend 'prepared'")
        if self.backend != "prepared" and not self.splits_dir:
            errors.add(f"{prefix}.splits_dir", f"is needed with backend {self.backend!r} (the official split files' folder)")
        for name in ("num_frames", "sampling_stride", "crop_size", "batch_size"):
            value = getattr(self, name)
            if value < 1:
                errors.add(f"{prefix}.{name}", f"must be at least 1, got {value}")
        if self.num_workers < 0:
            errors.add(f"{prefix}.num_workers", f"must be >= 0 (0 loads in the main process), got {self.num_workers}")
        if not self.train_scales or any(not 0.0 < s <= 1.0 for s in self.train_scales):
            errors.add(f"{prefix}.train_scales", f"must be a non-empty list of scales in (0, 1], got {list(self.train_scales)}")
        if not 0.0 <= self.max_decode_failure_fraction <= 1.0:
            errors.add(f"{prefix}.max_decode_failure_fraction", f"must be in [0, 1], got {self.max_decode_failure_fraction}")
        if (self.mean is None) != (self.std is None):
            errors.add(f"{prefix}.mean", "give both data.mean and data.std, or neither")
        if self.std is not None and any(v <= 0 for v in self.std):
            errors.add(f"{prefix}.std", f"must all be > 0, got {list(self.std)}")


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer. SGD fields (momentum, nesterov) and AdamW fields (betas, eps) coexist;
    only those of ``name`` are used."""

    name: OptimizerName = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    #: fnmatch patterns of parameter names -> learning-rate multipliers, e.g.
    #: ``{"fc.*": 10, "nonlocal_blocks.*": 10}``; the first pattern (in the order given) that
    #: matches a parameter decides. A pattern that matches no trainable parameter is an error.
    lr_mult: dict[str, float] = field(default_factory=dict)
    #: Parameters with no weight decay: ``norm`` (every BatchNorm / GroupNorm / LayerNorm
    #: weight and bias), ``bias`` (every other ``*.bias``). Empty: decay on everything (the paper).
    no_weight_decay_on: tuple[NoWeightDecayOn, ...] = ()
    #: Clip the global gradient norm to this value before each optimizer step (``null``: no
    #: clipping); the pre-clip norm is logged (``grad_norm``) with every step record.
    clip_grad_norm: float | None = None
    #: Label smoothing of the cross-entropy loss (0: none).
    label_smoothing: float = 0.0

    def check(self, errors: _Errors, prefix: str) -> None:
        for pattern, mult in self.lr_mult.items():
            if not mult > 0:
                errors.add(f"{prefix}.lr_mult.{pattern}", f"must be > 0, got {mult}")
        if len(set(self.no_weight_decay_on)) != len(self.no_weight_decay_on):
            errors.add(f"{prefix}.no_weight_decay_on", f"repeats an entry: {list(self.no_weight_decay_on)}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            errors.add(f"{prefix}.clip_grad_norm", f"must be > 0 (or null: no clipping), got {self.clip_grad_norm}")
        if not 0.0 <= self.label_smoothing < 1.0:
            errors.add(f"{prefix}.label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")
        if not self.lr > 0:
            errors.add(f"{prefix}.lr", f"must be > 0, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            errors.add(f"{prefix}.momentum", f"must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            errors.add(f"{prefix}.weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            errors.add(f"{prefix}.nesterov", "needs optimizer 'sgd' with momentum > 0")
        if any(not 0.0 <= b < 1.0 for b in self.betas):
            errors.add(f"{prefix}.betas", f"must both be in [0, 1), got {list(self.betas)}")
        if not self.eps > 0:
            errors.add(f"{prefix}.eps", f"must be > 0, got {self.eps}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped per epoch.

    ``step``: multiply by ``gamma`` every ``step_size`` epochs (the paper: 0.1 every 40);
    ``cosine``: anneal to ``min_lr``; ``multistep``: multiply by ``gamma`` at each epoch of
    ``milestones`` (absolute epoch numbers); ``plateau``: multiply by ``factor`` when the
    model-selection clip top-1 (evaluated every ``eval.every_epochs``; the validation split
    with ``data.val_fraction`` > 0) has not improved for
    ``patience`` evaluations, never below ``min_lr`` (as ``ReduceLROnPlateau``). Optional
    linear warm-up from ``warmup_start_factor x lr`` over ``warmup_epochs``, with every kind.
    """

    epochs: int = 100
    kind: ScheduleKind = "step"
    step_size: int = 40
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup_epochs: int = 0
    warmup_start_factor: float = 0.1
    #: ``multistep``: the epochs (1-based counts of finished epochs) at which lr is multiplied by gamma.
    milestones: tuple[int, ...] = ()
    #: ``plateau``: evaluations without improvement before the lr is multiplied by ``factor``.
    patience: int = 10
    factor: float = 0.1

    def check(self, errors: _Errors, prefix: str) -> None:
        if self.kind == "multistep":
            m = list(self.milestones)
            if not m:
                errors.add(f"{prefix}.milestones", "schedule.kind=multistep needs milestones, e.g. [40, 80]")
            elif any(b <= a for a, b in zip(m, m[1:])) or m[0] < 1 or m[-1] >= self.epochs:
                errors.add(f"{prefix}.milestones", f"must increase strictly and lie in [1, epochs={self.epochs}), got {m}")
        if self.patience < 0:
            errors.add(f"{prefix}.patience", f"must be >= 0, got {self.patience}")
        if not 0.0 < self.factor < 1.0:
            errors.add(f"{prefix}.factor", f"must be in (0, 1), got {self.factor}")
        if self.epochs < 1:
            errors.add(f"{prefix}.epochs", f"must be at least 1, got {self.epochs}")
        if self.step_size < 1:
            errors.add(f"{prefix}.step_size", f"must be at least 1, got {self.step_size}")
        if not 0.0 < self.gamma <= 1.0:
            errors.add(f"{prefix}.gamma", f"must be in (0, 1], got {self.gamma}")
        if self.min_lr < 0:
            errors.add(f"{prefix}.min_lr", f"must be >= 0, got {self.min_lr}")
        if self.warmup_epochs < 0 or (self.epochs >= 1 and self.warmup_epochs >= self.epochs):
            errors.add(f"{prefix}.warmup_epochs", f"must be in [0, epochs={self.epochs}), got {self.warmup_epochs}")
        if not 0.0 < self.warmup_start_factor <= 1.0:
            errors.add(f"{prefix}.warmup_start_factor", f"must be in (0, 1], got {self.warmup_start_factor}")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol.

    Clip level (the paper's numbers): one clip per test video, at the temporal centre,
    centre crop. Video level: ``num_clips`` uniform clips x ``num_crops`` crops per video,
    softmax probabilities averaged (``reduce``). ``every_epochs`` runs the clip-level
    evaluation during training (0: only at the end).
    """

    clip_protocol: ClipProtocol = "center"
    num_clips: int = 10
    num_crops: Literal[1, 3] = 3
    reduce: VideoReduce = "mean_prob"
    batch_size: int = 16
    every_epochs: int = 5

    def check(self, errors: _Errors, prefix: str) -> None:
        if self.num_clips < 1:
            errors.add(f"{prefix}.num_clips", f"must be at least 1, got {self.num_clips}")
        if self.batch_size < 1:
            errors.add(f"{prefix}.batch_size", f"must be at least 1, got {self.batch_size}")
        if self.every_epochs < 0:
            errors.add(f"{prefix}.every_epochs", f"must be >= 0 (0: only after training), got {self.every_epochs}")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the job runs.

    ``freeze_until``: parameters of every module before this one are frozen (and their
    BatchNorm statistics kept), as 3D-ResNets-PyTorch's ``ft_begin_module``; ``None`` trains
    everything, ``head`` trains only the classifier (and inserted non-local blocks).
    """

    seed: int = 0
    device: Device = "auto"
    amp: Amp = "none"
    channels_last: bool = False
    deterministic: bool = False
    grad_accum_steps: int = 1
    freeze_until: FreezePoint | None = None
    sync_bn: bool = False
    output_dir: str = "runs/experiment"
    log_every: int = 20
    checkpoint_every: int = 1
    #: tqdm progress bars (throughput and ETA) on the main process.
    progress: bool = True
    #: Also write TensorBoard event files (``<output_dir>/tensorboard``; ``tensorboard`` is a dependency).
    tensorboard: bool = True
    #: Stages whose residual blocks recompute their activations in the backward pass
    #: (``torch.utils.checkpoint``): less memory, ~one more forward of those stages.
    activation_checkpointing: tuple[CheckpointStage, ...] = ()
    #: ``torch.compile`` the training model (the first steps pay the compilation; logged).
    compile: bool = False

    def check(self, errors: _Errors, prefix: str) -> None:
        if len(set(self.activation_checkpointing)) != len(self.activation_checkpointing):
            errors.add(f"{prefix}.activation_checkpointing", f"repeats a stage: {list(self.activation_checkpointing)}")
        if self.seed < 0:
            errors.add(f"{prefix}.seed", f"must be >= 0, got {self.seed}")
        if self.grad_accum_steps < 1:
            errors.add(f"{prefix}.grad_accum_steps", f"must be at least 1, got {self.grad_accum_steps}")
        if self.log_every < 1:
            errors.add(f"{prefix}.log_every", f"must be at least 1 (steps), got {self.log_every}")
        if self.checkpoint_every < 1:
            errors.add(f"{prefix}.checkpoint_every", f"must be at least 1 (epochs), got {self.checkpoint_every}")
        if not self.output_dir:
            errors.add(f"{prefix}.output_dir", "is empty")
        if self.amp == "fp16" and self.device == "cpu":
            errors.add(f"{prefix}.amp", "fp16 autocast needs a CUDA device; use 'bf16' or 'none' on the CPU")
        if self.sync_bn and self.device == "cpu":
            errors.add(f"{prefix}.sync_bn", "SyncBatchNorm needs CUDA devices; set it false on the CPU")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment. ``nonlocal_blocks`` and ``pretrained`` are ``None`` when absent;
    in YAML either may also be given as a bare string (a kind, a registry name or path)."""

    name: str = "experiment"
    model: ModelConfig = field(default_factory=ModelConfig)
    nonlocal_blocks: NonLocalConfig | None = None
    pretrained: PretrainedConfig | None = None
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def check(self, errors: _Errors, prefix: str) -> None:
        if not self.name:
            errors.add("name", "is empty")
        if self.schedule.kind == "plateau" and self.eval.every_epochs == 0:
            errors.add("schedule.kind", "plateau follows the held-out clip top-1: set eval.every_epochs >= 1")


# Shorthand: `nonlocal_blocks: snl` and `pretrained: NAME_OR_PATH` expand to these fields.
_SHORTHAND_FIELD = {"nonlocal_blocks": "kind", "pretrained": "source"}


# --------------------------------------------------------------------------------------
# Non-local kind and options
# --------------------------------------------------------------------------------------


_PROBE_CHANNELS = 256


def _check_nonlocal_kind_and_options(kind: str, options: Mapping[str, Any], errors: _Errors, prefix: str) -> None:
    import torch

    from .nonlocal_blocks import build_nonlocal, list_nonlocal_kinds, nonlocal_options

    kinds = list_nonlocal_kinds()
    if kind not in kinds:
        errors.add(f"{prefix}.kind", f"unknown non-local kind {kind!r}; valid kinds: {', '.join(kinds)}{_suggest(kind, kinds)}")
        return
    defaults = nonlocal_options(kind)
    clean: dict[str, Any] = {}
    bad = False
    for name, value in options.items():
        key = f"{prefix}.options.{name}"
        if name not in defaults:
            valid = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
            errors.add(key, f"unknown option for non-local kind {kind!r}{_suggest(name, list(defaults))}; valid options: {valid}")
            bad = True
            continue
        expected = type(defaults[name])
        if expected is float and type(value) is int:
            value = float(value)
        # An option whose default is None (e.g. srb's groups, spatial_size) is checked by the block.
        if defaults[name] is not None and type(value) is not expected:
            errors.add(key, f"expected {expected.__name__} (default {defaults[name]!r}), got {type(value).__name__} {value!r}")
            bad = True
            continue
        clean[name] = value
    if bad:
        return
    # Value checks belong to the block itself: build a small one (256 channels, ~10 ms) and
    # report its error. Checks that depend on the real width (e.g. CGNL groups dividing the
    # channels) are the models layer's. fork_rng: validating must not move the global RNG.
    try:
        with torch.random.fork_rng(devices=[]):
            build_nonlocal(kind, _PROBE_CHANNELS, **clean)
    except (ValueError, TypeError) as exc:
        errors.add(f"{prefix}.options", str(exc))


# --------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-4`` as a float.

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-4``); ``weight_decay: 1e-4``
    would otherwise arrive as the *string* ``'1e-4'``.
    """


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in list(_Loader.yaml_implicit_resolvers):
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in _Loader.yaml_implicit_resolvers[_first] if tag != "tag:yaml.org,2002:float"
    ]
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _parse_yaml(text: str, *, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError([("", f"not valid YAML: {exc}")], source=source) from exc


def load_yaml_with_includes(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; a top-level ``defaults:`` (or ``base:``) names one file or a
    list of files, relative to this one, that are read first (in order) and deep-merged
    under it. A value in the including file replaces the base's, except that mappings merge.
    """
    return _load_yaml(Path(path), ())


def _load_yaml(path: Path, _seen: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise ConfigError([("defaults", f"include cycle: {chain}")], source=str(path))
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([("", f"not UTF-8 text ({exc}); save the recipe as UTF-8")], source=str(path)) from None
    data = _parse_yaml(text, source=str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", f"the top level must be a mapping of sections, got {type(data).__name__}")], source=str(path))
    merged: dict[str, Any] = {}
    for key in INCLUDE_KEYS:
        if key not in data:
            continue
        includes = data.pop(key)
        includes = [includes] if isinstance(includes, str) else includes
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            raise ConfigError([(key, f"must be a file name or a list of file names, got {includes!r}")], source=str(path))
        for include in includes:
            base = _load_yaml(path.parent / include, (*_seen, resolved))
            merged = _deep_merge(merged, base)
    return _deep_merge(merged, data)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        elif isinstance(value, Mapping) and isinstance(out.get(key), str) and key in _SHORTHAND_FIELD:
            out[key] = _deep_merge({_SHORTHAND_FIELD[key]: out[key]}, value)
        else:
            out[key] = value
    return out


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to a raw config mapping.

    Returns the new mapping and the malformed overrides as ``(key, message)`` pairs (the
    caller reports them together with the validation errors). Unknown keys are not an
    error here: validation reports them, with suggestions, like keys in the file.
    """
    out = copy.deepcopy(dict(data))
    problems: list[tuple[str, str]] = []
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append((key or override, f"override {override!r} is not of the form dotted.key=value"))
            continue
        try:
            value = yaml.load(raw, Loader=_Loader) if raw.strip() else None  # noqa: S506
        except yaml.YAMLError as exc:
            problems.append((key, f"value {raw!r} is not valid YAML: {exc}"))
            continue
        parts = key.split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str) and depth == 0 and part in _SHORTHAND_FIELD:
                child = node[part] = {_SHORTHAND_FIELD[part]: child}
            elif not isinstance(child, dict):
                problems.append((key, f"cannot set {key!r}: {'.'.join(parts[: depth + 1])!r} is {child!r}, not a section"))
                break
            node = child
        else:
            node[parts[-1]] = value
    return out, problems


# --------------------------------------------------------------------------------------
# Mapping -> typed objects
# --------------------------------------------------------------------------------------

_MISSING = object()


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if value is not None else "null"


def _convert(value: Any, tp: Any, key: str, errors: _Errors) -> Any:
    """``value`` as type ``tp``, or ``_MISSING`` after recording an error. Coerces only
    where nothing is lost: int → float, list → tuple."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, errors)
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        valid = ", ".join(repr(a) for a in args)
        errors.add(key, f"invalid choice {value!r}; valid choices: {valid}{_suggest(value, [str(a) for a in args])}")
        return _MISSING
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _convert(value, members[0], key, errors)
        for member in members:  # first member that accepts the value without an error
            trial = _Errors()
            converted = _convert(value, member, key, trial)
            if not trial.items:
                return converted
        errors.add(key, f"expected {_type_name(tp)}, got {_describe(value)}")
        return _MISSING
    if tp is Any:
        return value
    if tp is bool:
        if type(value) is bool:
            return value
        errors.add(key, f"expected true or false, got {_describe(value)}")
        return _MISSING
    if tp is int:
        if type(value) is int:
            return value
        errors.add(key, f"expected an integer, got {_describe(value)}")
        return _MISSING
    if tp is float:
        if type(value) in (int, float):
            return float(value)
        errors.add(key, f"expected a number, got {_describe(value)}")
        return _MISSING
    if tp is str:
        if isinstance(value, str):
            return value
        errors.add(key, f"expected a string, got {_describe(value)}")
        return _MISSING
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            errors.add(key, f"expected a list, got {_describe(value)}")
            return _MISSING
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        else:
            if len(value) != len(args):
                errors.add(key, f"expected a list of {len(args)} values, got {len(value)}: {list(value)!r}")
                return _MISSING
            item_types = list(args)
        items = [_convert(v, t, f"{key}[{i}]", errors) for i, (v, t) in enumerate(zip(value, item_types))]
        return _MISSING if any(i is _MISSING for i in items) else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            errors.add(key, f"expected a mapping, got {_describe(value)}")
            return _MISSING
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                errors.add(key, f"keys must be strings, got {_describe(k)}")
                return _MISSING
            converted = _convert(v, args[1], f"{key}.{k}", errors)
            if converted is _MISSING:
                return _MISSING
            out[k] = converted
        return out
    raise TypeError(f"internal: no converter for {tp!r} at {key}")  # a schema bug, not a user error


def _build(cls: type, value: Any, prefix: str, errors: _Errors) -> Any:
    if prefix in _SHORTHAND_FIELD and isinstance(value, str):
        value = {_SHORTHAND_FIELD[prefix]: value}
    if not isinstance(value, dict):
        errors.add(prefix, f"expected a section (mapping) for {cls.__name__}, got {_describe(value)}")
        return _MISSING
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in value:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            errors.add(where, f"unknown key{_suggest(key, names)} (valid keys: {', '.join(names)})")
    kwargs: dict[str, Any] = {}
    failed: set[str] = set()
    for f in dataclasses.fields(cls):
        name = f.name
        key = f"{prefix}.{name}" if prefix else name
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.add(key, "is required")
                failed.add(key)
            continue
        before = len(errors.items)
        converted = _convert(value[name], hints[name], key, errors)
        if converted is _MISSING or len(errors.items) > before:
            failed.add(key)
        else:
            kwargs[name] = converted
    # Range checks run even when some fields failed (those keep their defaults), so every
    # problem of the section is reported; a check about a failed field would only repeat it.
    try:
        obj = cls(**kwargs)
    except TypeError:  # a required field failed: nothing to range-check without it
        return _MISSING
    checks = _Errors()
    obj.check(checks, prefix)
    errors.items += [(k, m) for k, m in checks.items if not any(k == f or k.startswith(f + ".") for f in failed)]
    return _MISSING if failed else obj


def config_from_dict(data: Mapping[str, Any], *, source: str | None = None) -> ExperimentConfig:
    """Validate a raw mapping (as read from YAML) into an :class:`ExperimentConfig`.

    Raises:
        ConfigError: listing every problem found.
    """
    errors = _Errors()
    if not isinstance(data, Mapping):
        raise ConfigError([("", f"the top level must be a mapping of sections, got {_describe(data)}")], source=source)
    cfg = _build(ExperimentConfig, dict(data), "", errors)
    if errors.items or cfg is _MISSING:
        raise ConfigError(errors.items or [("", "invalid configuration")], source=source)
    return cfg


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML recipe (with ``defaults:`` includes), apply ``key=value`` overrides, validate.

    Args:
        path: the YAML file.
        overrides: ``dotted.key=value`` strings, e.g. ``optim.lr=0.1``,
            ``nonlocal_blocks.kind=nl``, ``data.split=2``; values are parsed as YAML
            (``[1, 2]`` is a list, ``null`` is None).

    Raises:
        ConfigError: every problem in the file and the overrides, at once.
        FileNotFoundError: the file (or an included file) does not exist.
    """
    raw = load_yaml_with_includes(path)
    raw, problems = apply_overrides(raw, overrides)
    try:
        cfg = config_from_dict(raw, source=str(path))
    except ConfigError as exc:
        raise ConfigError(problems + exc.errors, source=str(path)) from None
    if problems:
        raise ConfigError(problems, source=str(path))
    logger.debug("loaded config %s with %d override(s)", path, len(overrides))
    return cfg


# --------------------------------------------------------------------------------------
# Typed objects -> mapping / file
# --------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The fully resolved config as plain YAML/JSON-able data (lists, dicts, scalars)."""
    return _plain(cfg)


class _Dumper(yaml.SafeDumper):
    """Keeps the schema's key order and writes ``null`` for None."""


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML text."""
    return yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100)


def save_config(cfg: ExperimentConfig, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config to ``path`` atomically (temporary name, then ``os.replace``),
    so a run directory always records the exact config it ran with."""
    text = "# Resolved configuration (defaults, includes and overrides applied); load it with load_config.\n"
    text += dump_config(cfg)
    return atomic_write_text(path, text)
