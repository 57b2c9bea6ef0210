"""The configuration schema: one frozen dataclass per section, each with its range checks.

The defaults are the paper's UCF-101 fine-tuning recipe (Zhu et al., ICCV 2021, following
3D-ResNets-PyTorch): SGD with momentum 0.9 and weight decay 1e-4, learning rate 0.01
divided by 10 every 40 epochs, 100 epochs, 16-frame 112x112 clips.

Strings live only at this boundary: choices are ``Literal`` types checked against their
valid values (by :mod:`.convert`), and each section's ``check`` adds its range problems to
an :class:`~.errors.ErrorList` (the non-local kind and options through :mod:`.validation`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from ..data.decoding import Backend
from ..data.sources import DatasetName
from ..models.resnet3d import STAGE_NAMES, StageName
from .errors import ErrorList, suggest
from .validation import check_nonlocal_kind_and_options

__all__ = [
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "ModelConfig",
    "NonLocalConfig",
    "OptimConfig",
    "PretrainedConfig",
    "RuntimeConfig",
    "ScheduleConfig",
    "DatasetName",
    "DEFAULT_LOGGERS",
    "FREEZE_POINTS",
    "LoggerName",
    "INCLUDE_KEYS",
    "SHORTHAND_FIELD",
    "STAGE_ALIASES",
    "STAGE_NAMES",
    "VideoReduce",
]

#: Where ``runtime.freeze_until`` may stop: the stem, a stage (``STAGE_NAMES``, the stage
#: names of the 3D ResNet family, defined with the backbone) or the head.
FreezePoint = Literal["stem", StageName, "head"]
FREEZE_POINTS: tuple[str, ...] = get_args(FreezePoint)
# The paper's stage names (res2 = layer1, ...), accepted in non-local positions.
STAGE_ALIASES: tuple[str, ...] = ("res2", "res3", "res4", "res5")

#: Keys that name a base YAML file to include (resolved relative to the including file).
INCLUDE_KEYS: tuple[str, ...] = ("defaults", "base")

#: Where ``data.backend`` reads clips: the prepared format, or a video decoder (its names defined once, in decoding).
DataBackend = Literal["prepared", Backend]
TrainCrop = Literal["multiscale", "random_resized"]
OptimizerName = Literal["sgd", "adamw"]
ScheduleKind = Literal["step", "cosine", "multistep", "plateau"]
Device = Literal["auto", "cpu", "cuda"]
Amp = Literal["none", "bf16", "fp16"]
CheckpointFormatName = Literal["torch", "safetensors"]
#: Where ``train`` sends its metrics (``runtime.loggers``): TensorBoard event files, ``metrics.csv``,
#: Weights & Biases, MLflow (the last two are the optional extras ``snl-video[wandb]`` /
#: ``snl-video[mlflow]``; see :mod:`snl_video.engine.trackers`).
LoggerName = Literal["tensorboard", "csv", "wandb", "mlflow"]
#: What ``runtime.loggers`` holds unless a recipe says otherwise (the behaviour before the key existed).
DEFAULT_LOGGERS: tuple[LoggerName, ...] = ("tensorboard", "csv")
ClipProtocol = Literal["center"]
NoWeightDecayOn = Literal["norm", "bias"]
#: A stage whose residual blocks ``runtime.activation_checkpointing`` may recompute.
CheckpointStage = StageName
#: How clip scores become a video score (``eval.reduce``; the metrics use the same type).
VideoReduce = Literal["mean_prob", "mean_logit"]


# Sequences are stored as tuples and every section is frozen, so a config passed down the
# engine cannot be changed behind the caller's back (option dicts are the one mutable part).


@dataclass(frozen=True)
class ModelConfig:
    """The network: a name from the model registry, the class count and head dropout."""

    #: A model registry name, e.g. ``r3d50``, ``i3d_r50``, ``x3d_m``.
    name: str = "r3d50"
    #: Classes of the classification head (UCF-101: 101, HMDB-51: 51).
    num_classes: int = 101
    #: 3D-ResNets-PyTorch (whose recipe the paper follows) has no dropout before the head.
    dropout: float = 0.0
    #: The model's constructor options (``model_entry(name).options()``), e.g.
    #: ``{widen_factor: 0.5}`` for the small demo network; unknown ones fail at build time.
    options: dict[str, Any] = field(default_factory=dict)
    #: A head with more classes than the dataset has is an error before training (a 101-class
    #: recipe on a 4-class dataset trains 97 classes no video has, and predict ranks them);
    #: ``true`` allows it on purpose (e.g. to add classes later), checked in
    #: :func:`snl_video.engine.preflight.data_problems`.
    allow_extra_classes: bool = False

    def check(self, errors: ErrorList, prefix: str) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.+-]*", self.name):
            errors.add(f"{prefix}.name", f"must be a model name such as 'r3d50', got {self.name!r}")
        if self.num_classes < 2:
            errors.add(f"{prefix}.num_classes", f"must be at least 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            errors.add(f"{prefix}.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class NonLocalConfig:
    """Non-local blocks to insert into the backbone.

    ``positions`` maps a stage (``layer1`` .. ``layer4``, or ``res2`` .. ``res5``; in a
    two-pathway model qualified by its pathway, ``slow.layer3``) to 0-based
    residual-block indices; a block is inserted *after* each listed residual block (the
    convention of :mod:`snl_video.models.placement`). ``{layer3: [4]}`` in a 50-layer network
    (6 blocks in ``layer3`` = res4) is the paper's placement: one block in res4 before its
    last residual block. ``None`` means the model's default placement (that one).
    The indices, and whether the model has that pathway, are checked against the model's
    real stages by the models layer (placement, run by validation); the kind, its options
    and the stage-name shape are checked here.
    """

    #: The block kind (``snl-video nonlocal`` lists them), e.g. ``snl``, ``nl``, ``a2``, ``ns``,
    #: ``cgnl``.
    kind: str = "snl"
    #: The kind's options, e.g. ``{order: 3}`` or ``{filter: cayley}``; checked against the block
    #: registry.
    options: dict[str, Any] = field(default_factory=dict)
    #: Stage -> 0-based residual-block indices after which a block goes, e.g. ``{layer3: [4]}``;
    #: ``null``: the model's default placement.
    positions: dict[str, tuple[int, ...]] | None = None

    def check(self, errors: ErrorList, prefix: str) -> None:
        check_nonlocal_kind_and_options(self.kind, self.options, errors, prefix)
        if self.positions is not None:
            if not self.positions:
                errors.add(f"{prefix}.positions", "is empty: leave it out (null) for the default placement, or list blocks")
            for stage, indices in self.positions.items():
                key = f"{prefix}.positions.{stage}"
                pathway, dot, bare = stage.rpartition(".")
                if bare not in STAGE_NAMES + STAGE_ALIASES or (dot and not pathway.isidentifier()):
                    valid = STAGE_NAMES + STAGE_ALIASES
                    errors.add(key, f"unknown stage {stage!r}; valid stages: {', '.join(valid)}, or in a two-pathway "
                               f"model <pathway>.<stage> (SlowFast: slow.layer3){suggest(bare, valid)}")
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

    #: A weights registry name (``snl-video weights list``) or a checkpoint file path.
    source: str
    #: fnmatch patterns of checkpoint keys not to load (the head is replaced anyway when the class
    #: count differs).
    ignore: tuple[str, ...] = ()

    def check(self, errors: ErrorList, prefix: str) -> None:
        from ..weights import list_weights

        names = list_weights()
        if self.source in names:
            return
        if not Path(self.source).expanduser().is_file():
            errors.add(
                f"{prefix}.source",
                f"{self.source!r} is neither a registry name nor an existing file"
                f"{suggest(self.source, names)} (registry names: `snl-video weights list`)",
            )


@dataclass(frozen=True)
class DataConfig:
    """The prepared dataset and how clips are drawn from it.

    ``root`` is the directory written by ``snl-video prepare`` (``backend: prepared``) or the
    UCF-101 video tree (a decoding backend; then ``splits_dir`` holds the official split
    files). Train crops follow 3D-ResNets-PyTorch: a square of side ``scale x short side``
    for a random scale from ``train_scales``, at a random position, resized to ``crop_size``.
    """

    #: The folder written by ``snl-video prepare`` (backend ``prepared``) or the video tree (a
    #: decoding backend).
    root: str = "data/ucf101_prepared"
    #: The split to train and evaluate on: 1-3 for UCF-101 / HMDB-51, or the name a folder or list
    #: was prepared with.
    split: int | str = 1
    #: Where clips are read: ``prepared`` (the prepared format) or a video decoder.
    backend: DataBackend = "prepared"
    #: The official split files' folder; needed with a decoding backend.
    splits_dir: str | None = None
    #: Clip length: frames the model sees per clip.
    num_frames: int = 16
    #: Step between a clip's frames (1: consecutive frames).
    sampling_stride: int = 1
    #: Side of the square crop fed to the model, in pixels.
    crop_size: int = 112
    #: Train-time crop: ``multiscale`` (3D-ResNets-PyTorch corner/centre crops at ``train_scales``)
    #: or ``random_resized``.
    train_crop: TrainCrop = "multiscale"
    #: Crop sides as fractions of the short side, one drawn per clip (``multiscale``).
    train_scales: tuple[float, ...] = (1.0, 2**-0.25, 2**-0.5, 2**-0.75, 0.5)
    #: Flip training clips horizontally at random.
    horizontal_flip: bool = True
    #: Training clips per batch (per process under torchrun).
    batch_size: int = 32
    #: Data-loading worker processes (0: load in the main process).
    num_workers: int = 4
    #: Fraction of the dataset's videos that may fail to decode before it is an error (0: any failure).
    max_decode_failure_fraction: float = 0.0
    #: Input normalisation. ``None``: from the pretrained registry entry when ``pretrained``
    #: names one, else the Kinetics statistics of 3D-ResNets-PyTorch on a [0, 1] scale.
    mean: tuple[float, float, float] | None = None
    #: Input standard deviation per channel, on the ``value_scale`` pixel scale; give it with
    #: ``mean``.
    std: tuple[float, float, float] | None = None
    #: Pixel scale ``data.mean/std`` are in (1: [0, 1] pixels; 255: 0-255, as Hara's 2017 and
    #: Caffe-style weights). ``None`` reads as 1. A run's record holds the resolved value.
    value_scale: float | None = None
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
    #: CutMix's Beta(alpha, alpha) parameter (0: off); with ``mixup_alpha`` > 0 too, each batch gets
    #: one of the two.
    cutmix_alpha: float = 0.0

    def check(self, errors: ErrorList, prefix: str) -> None:
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                errors.add(f"{prefix}.{name}", f"must be >= 0 (0: off), got {getattr(self, name)}")
        if not self.root:
            errors.add(f"{prefix}.root", "is empty: give the prepared dataset directory")
        from ..data.sources import registered_sources

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
        if self.value_scale is not None and self.value_scale <= 0:
            errors.add(f"{prefix}.value_scale", f"must be > 0 (1: [0, 1] pixels, 255: 0-255), got {self.value_scale}")
        if self.std is not None and any(v <= 0 for v in self.std):
            errors.add(f"{prefix}.std", f"must all be > 0, got {list(self.std)}")


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer. SGD fields (momentum, nesterov) and AdamW fields (betas, eps) coexist;
    only those of ``name`` are used."""

    #: The optimizer: ``sgd`` (the paper) or ``adamw``.
    name: OptimizerName = "sgd"
    #: The base learning rate.
    lr: float = 0.01
    #: SGD momentum.
    momentum: float = 0.9
    #: L2 weight decay (SGD) or decoupled weight decay (AdamW).
    weight_decay: float = 1e-4
    #: Nesterov momentum (SGD with momentum > 0).
    nesterov: bool = False
    #: AdamW's two moving-average coefficients.
    betas: tuple[float, float] = (0.9, 0.999)
    #: AdamW's denominator epsilon.
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

    def check(self, errors: ErrorList, prefix: str) -> None:
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

    #: Training epochs.
    epochs: int = 100
    #: ``step``, ``cosine``, ``multistep`` or ``plateau`` (see the section's description).
    kind: ScheduleKind = "step"
    #: ``step``: epochs between learning-rate drops.
    step_size: int = 40
    #: ``step`` / ``multistep``: the factor the learning rate is multiplied by at each drop.
    gamma: float = 0.1
    #: ``cosine``: the final learning rate; ``plateau``: the floor.
    min_lr: float = 0.0
    #: Epochs of linear warm-up before the schedule (0: none).
    warmup_epochs: int = 0
    #: The warm-up's first learning rate, as a fraction of ``lr``.
    warmup_start_factor: float = 0.1
    #: ``multistep``: the epochs (1-based counts of finished epochs) at which lr is multiplied by gamma.
    milestones: tuple[int, ...] = ()
    #: ``plateau``: evaluations without improvement before the lr is multiplied by ``factor``.
    patience: int = 10
    #: ``plateau``: the factor the learning rate is multiplied by when the metric stalls.
    factor: float = 0.1

    def check(self, errors: ErrorList, prefix: str) -> None:
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

    #: Clip-level protocol: ``center`` (one clip at the video's temporal centre, centre crop).
    clip_protocol: ClipProtocol = "center"
    #: Video level: uniformly spaced clips per video.
    num_clips: int = 10
    #: Video level: spatial crops per clip (1: the centre; 3: three crops along the long side).
    num_crops: Literal[1, 3] = 3
    #: How clip scores become a video score: mean of probabilities or of logits.
    reduce: VideoReduce = "mean_prob"
    #: Clips per evaluation batch.
    batch_size: int = 16
    #: Run the clip-level evaluation every this many epochs during training (0: only at the end).
    every_epochs: int = 5

    def check(self, errors: ErrorList, prefix: str) -> None:
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

    #: The random seed (data order, augmentation, initialisation).
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    device: Device = "auto"
    #: Mixed precision: ``none``, ``bf16`` (CPU or CUDA) or ``fp16`` (CUDA only, with a gradient
    #: scaler).
    amp: Amp = "none"
    #: Run the model in the channels-last memory layout.
    channels_last: bool = False
    #: Ask PyTorch for deterministic algorithms (slower; same results run to run).
    deterministic: bool = False
    #: Batches whose gradients are summed before each optimizer step.
    grad_accum_steps: int = 1
    #: Freeze every module before this one (``stem``, a stage or ``head``); ``null`` trains
    #: everything.
    freeze_until: FreezePoint | None = None
    #: Synchronise BatchNorm statistics across processes (CUDA, torchrun).
    sync_bn: bool = False
    #: The run's output folder (checkpoints, logs, config.yaml, evaluation).
    output_dir: str = "runs/experiment"
    #: Log training metrics every this many steps.
    log_every: int = 20
    #: Save the resumable checkpoint every this many epochs.
    checkpoint_every: int = 1
    #: tqdm progress bars (throughput and ETA) on the main process.
    progress: bool = True
    #: Where the training metrics go besides ``metrics.jsonl`` (the run's own record, always written):
    #: ``tensorboard`` (``<output_dir>/tensorboard``), ``csv`` (``metrics.csv``), ``wandb`` (Weights &
    #: Biases) and ``mlflow`` (the extras ``snl-video[wandb]`` / ``snl-video[mlflow]``; configured by
    #: their own environment variables, e.g. ``WANDB_MODE=offline``, ``MLFLOW_TRACKING_URI``).
    loggers: tuple[LoggerName, ...] = DEFAULT_LOGGERS
    #: Shorthand for TensorBoard in ``loggers``: ``true`` adds it, ``false`` removes it, ``null``
    #: (the default) leaves ``loggers`` as it is.
    tensorboard: bool | None = None
    #: Stages whose residual blocks recompute their activations in the backward pass
    #: (``torch.utils.checkpoint``): less memory, ~one more forward of those stages.
    activation_checkpointing: tuple[CheckpointStage, ...] = ()
    #: ``torch.compile`` the training model (the first steps pay the compilation; logged).
    compile: bool = False
    #: Flush denormal floats to zero on every CPU thread (steady steps once gradients are tiny;
    #: see :mod:`snl_video.engine.runtime`); ``SNL_VIDEO_FLUSH_DENORMAL=0`` also turns it off.
    flush_denormal: bool = True
    #: ``safetensors`` also writes the model's weights as ``checkpoints/last.safetensors`` (and
    #: ``best.safetensors``) beside each ``.pt``: a file that holds tensors only, which any
    #: safetensors reader can load without running code. The ``.pt`` stays (optimizer, scheduler
    #: and RNG state for ``--resume``; the recipe). ``torch``: the ``.pt`` files only.
    checkpoint_format: CheckpointFormatName = "torch"

    def check(self, errors: ErrorList, prefix: str) -> None:
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
        if len(set(self.loggers)) != len(self.loggers):
            errors.add(f"{prefix}.loggers", f"repeats a logger: {list(self.loggers)}")

    def active_loggers(self) -> tuple[str, ...]:
        """``loggers`` with the ``tensorboard`` shorthand applied: the loggers a run opens."""
        names = [n for n in self.loggers if not (n == "tensorboard" and self.tensorboard is False)]
        if self.tensorboard and "tensorboard" not in names:
            names.insert(0, "tensorboard")
        return tuple(names)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment. ``nonlocal_blocks`` and ``pretrained`` are ``None`` when absent;
    in YAML either may also be given as a bare string (a kind, a registry name or path)."""

    #: The experiment's name, recorded in checkpoints, evaluation reports and model cards.
    name: str = "experiment"
    #: The network (a model registry name, class count, head dropout, constructor options).
    model: ModelConfig = field(default_factory=ModelConfig)
    #: Non-local blocks to insert (``null``: none); a bare string is the kind, e.g. ``snl``.
    nonlocal_blocks: NonLocalConfig | None = None
    #: Initial weights (``null``: from scratch); a bare string is a registry name or a checkpoint
    #: path.
    pretrained: PretrainedConfig | None = None
    #: The prepared dataset and how clips are drawn from it.
    data: DataConfig = field(default_factory=DataConfig)
    #: The optimizer and the loss's label smoothing.
    optim: OptimConfig = field(default_factory=OptimConfig)
    #: The learning-rate schedule (stepped per epoch) and the number of epochs.
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    #: The evaluation protocol (clip level and video level).
    eval: EvalConfig = field(default_factory=EvalConfig)
    #: Where and how the job runs: device, precision, output folder, logging, checkpoints.
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def check(self, errors: ErrorList, prefix: str) -> None:
        if not self.name:
            errors.add("name", "is empty")
        if self.schedule.kind == "plateau" and self.eval.every_epochs == 0:
            errors.add("schedule.kind", "plateau follows the held-out clip top-1: set eval.every_epochs >= 1")


#: Shorthand: ``nonlocal_blocks: snl`` and ``pretrained: NAME_OR_PATH`` expand to these fields.
SHORTHAND_FIELD = {"nonlocal_blocks": "kind", "pretrained": "source"}
