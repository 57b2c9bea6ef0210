"""One model loader for inference: any trained or pretrained model, with what it needs.

:func:`load_inference_model` turns one of

* a training checkpoint written by ``snl-video train`` (self-describing; or an older one
  with the recipe it was trained with, ``config``),
* a weights registry name (``snl-video weights list``) or a foreign checkpoint file
  (``weights``: its registry entry found by file name, or its architecture by its tensors),

into an :class:`InferenceModel`: the network in eval mode, its
:class:`~snl_video.inputspec.InputSpec`, class names, resolved recipe (for training
checkpoints), evaluation protocol (clips x crops) and a description of where it came from.
``predict``, ``explain``, ``features``, ``export``, ``spectrum`` and ``eval --weights`` all
start from it; ``eval --checkpoint`` rebuilds its model with :func:`model_from_training_state`,
the same function this loader uses for training checkpoints (``eval`` reads the file on
rank 0 only and shares the tensors, so it hands over the state instead of the path).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import torch
from torch import nn

from ..config import ExperimentConfig, VideoReduce
from ..data.transforms import HARA_KINETICS_NORMALIZATION, NormalizationSpec
from ..inputspec import InputSpec
from ..errors import InvalidValueError, MissingFileError

if TYPE_CHECKING:
    from ..weights import DetectedCheckpoint
    from ..weights.registry import PretrainedWeights
    from .publish import PublishedFolder

logger = logging.getLogger(__name__)

__all__ = ["InferenceModel", "load_inference_model", "model_from_training_state", "generic_class_names",
           "read_training_checkpoint_or_none"]

@dataclass
class InferenceModel:
    """A network in eval mode and the facts needed to feed it and read its output.

    ``input_spec`` is what the network must be fed; ``num_clips`` x ``num_crops`` and
    ``reduce`` are the default video-level protocol (the checkpoint's recipe, or the
    registry entry's evaluation protocol); ``recipe`` is the resolved config of a training
    checkpoint (``None`` for registry or foreign weights); ``source`` says where it came from.
    """

    model: nn.Module
    architecture: str
    class_names: list[str]
    input_spec: InputSpec
    num_clips: int
    num_crops: Literal[1, 3]
    reduce: VideoReduce
    source: str
    recipe: ExperimentConfig | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: False when the input spec is a guess (a foreign file with no registry entry).
    input_known: bool = True
    #: The short side ``prepare`` stored the training / evaluation frames at (None: frames
    #: were read from the video files). Decoded frames are resized to it first
    #: (:meth:`transform`), so a video file is fed as its prepared copy is in ``eval``.
    frame_short_side: int | None = None
    #: Autocast dtype of the forward (None: fp32); set by :meth:`set_precision`.
    amp_dtype: torch.dtype | None = None
    #: Feed activations as channels-last 3D (set with bf16 on the CPU, where it is faster).
    channels_last: bool = False
    #: Builds the same network again without weights (on the ambient device): how a size the
    #: model is asked to take is checked on the meta device (:meth:`set_crop_size`).
    rebuild: Callable[[], nn.Module] | None = field(default=None, repr=False, compare=False)

    def set_precision(self, precision: str) -> "InferenceModel":
        """Run the forward in ``precision`` (``fp32`` or ``bf16`` autocast; see
        :mod:`snl_video.engine.precision`, which refuses bf16 where the CPU would emulate it),
        with the activation layout that is fastest for it on this device
        (:func:`~snl_video.engine.precision.channels_last_by_default`)."""
        from .precision import autocast_dtype, channels_last_by_default

        self.amp_dtype = autocast_dtype(precision, self.device)
        self.channels_last = channels_last_by_default(self.architecture, precision, self.device)
        fmt = torch.channels_last_3d if self.channels_last else torch.contiguous_format
        self.model.to(memory_format=fmt)
        return self

    def transform(self, *, crops: Literal[1, 3] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The test-time transform of ``uint8 (T, H, W, 3)`` frames decoded from a video file:
        the prepared resize when the model was trained on prepared frames
        (:class:`~snl_video.data.prepare.ResizeShortSide`), then
        :func:`~snl_video.data.transforms.input_transform` of the input spec (``crops``:
        default the model's protocol). Every verb that feeds video files to a model uses it."""
        from torchvision.transforms import v2

        from ..data.prepare import ResizeShortSide
        from ..data.transforms import input_transform

        inner = input_transform(self.input_spec, crops=crops if crops is not None else self.num_crops)
        if self.frame_short_side is None:
            return inner
        return v2.Compose([ResizeShortSide(self.frame_short_side), inner])

    def set_crop_size(self, crop_size: int) -> "InferenceModel":
        """Feed the model ``crop_size``² crops (frames resized to a short side of ``crop_size``,
        then cropped): a test crop larger than the training one, as PySlowFast tests X3D
        (``TEST_CROP_SIZE``) and as ``eval`` does with ``data.crop_size``. A model that cannot
        take clips of that size (MViT at anything but 224, S3D below its minimum) is refused
        first, with the reason its forward gives. The input spec (and a recipe's
        ``data.crop_size``) say the new size, so every record of it does too."""
        import dataclasses

        from .preflight import clip_size_problem

        if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 1:
            raise InvalidValueError(f"--crop-size must be a positive number of pixels, got {crop_size!r}")
        if crop_size == self.input_spec.crop_size and self.input_spec.resize is None:
            return self
        if self.recipe is not None:
            from .preflight import input_size_problems

            recipe = dataclasses.replace(self.recipe, data=dataclasses.replace(self.recipe.data, crop_size=crop_size))
            problems = input_size_problems(recipe)
            reason = problems[0][1] if problems else None
        else:
            recipe = None
            reason = (clip_size_problem(self.rebuild, num_frames=self.num_frames, crop_size=crop_size)
                      if self.rebuild is not None else None)
        if reason is not None:
            raise InvalidValueError(f"--crop-size {crop_size}: {self.architecture} cannot take clips of "
                                    f"{self.num_frames}x{crop_size}x{crop_size}: {reason}; give a crop size it takes "
                                    f"(its own is {self.input_spec.crop_size})")
        logger.info("test crop %d (the model's own input: %s, short side %d)", crop_size,
                    self.input_spec.crop_size, self.input_spec.short_side)
        self.input_spec = self.input_spec.replace(crop_size=crop_size, resize=None)
        if recipe is not None:
            self.recipe = recipe
        return self

    @property
    def flush_denormal(self) -> bool:
        """Whether the verbs that run this model flush denormals (the recipe's
        ``runtime.flush_denormal``; True for weights without a recipe). The verb applies it for
        its own duration (:func:`snl_video.engine.runtime.flush_denormal`): loading changes nothing."""
        return bool(getattr(getattr(self.recipe, "runtime", None), "flush_denormal", True))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def normalization(self) -> NormalizationSpec:
        """The input spec's mean / std / value scale."""
        return NormalizationSpec.from_any(self.input_spec)

    @property
    def num_frames(self) -> int:
        return self.input_spec.num_frames

    @property
    def sampling_stride(self) -> int:
        return self.input_spec.sampling_stride

    @property
    def crop_size(self) -> int:
        return self.input_spec.crop_size

    def describe(self) -> str:
        """One line: what the model is, what it is fed and where it came from (for logs and reports)."""
        spec = self.input_spec
        blocks = ""
        if self.recipe is not None:
            nl = self.recipe.nonlocal_blocks
            blocks = f" + {nl.kind} blocks" if nl is not None else " (no non-local blocks)"
        guessed = "" if self.input_known else " (input spec guessed)"
        return (f"{self.architecture}{blocks}, {self.num_classes} classes, {spec.num_frames}x{spec.crop_size}^2 clips "
                f"(stride {spec.sampling_stride}){guessed}, {self.num_clips} clips x {self.num_crops} crops; "
                f"from {self.source}")


def generic_class_names(count: int) -> list[str]:
    """``class_0 ... class_{count-1}``: names for a head whose classes nobody named."""
    return [f"class_{i}" for i in range(count)]


# --------------------------------------------------------------------------------------
# Training checkpoints
# --------------------------------------------------------------------------------------


def model_from_training_state(state: dict[str, Any], cfg: ExperimentConfig, *, path: str | os.PathLike[str]) -> nn.Module:
    """``cfg``'s model (backbone + placed blocks, no pretrained download) with a training
    checkpoint's tensors, every key and shape checked (one-line error naming the mismatch)."""
    from ..config import config_to_dict
    from .builders import build_model_from_config
    from .state_fit import describe_recipe, load_model_state

    model = build_model_from_config(cfg, load_weights=False)
    load_model_state(model, state, checkpoint=path, model_desc=describe_recipe(config_to_dict(cfg)))
    return model


def _from_training_checkpoint(
    state: dict[str, Any], path: str | os.PathLike[str], *, config: Any, overrides: Sequence[str]
) -> InferenceModel:
    from .checkpoint import describe_checkpoint

    described = describe_checkpoint(state, path=path, config=config, overrides=overrides)
    cfg = described.recipe
    model = model_from_training_state(state, cfg, path=path)
    from .builders import build_model_from_config

    names = described.class_names if described.class_names is not None else generic_class_names(cfg.model.num_classes)
    prepared = state.get("prepared_frames")
    if not isinstance(prepared, dict):  # a checkpoint written before it recorded them: the recipe's folder
        from .checkpoint import prepared_frames_of

        prepared = prepared_frames_of(cfg)
        if prepared is None and cfg.data.backend == "prepared":
            logger.info("%s: trained on prepared frames whose short side it does not record (and %s is not "
                        "reachable): video files are resized straight to the crop, so scores can differ from "
                        "eval's by ~1e-2", path, cfg.data.root)
    return InferenceModel(
        model=model.eval(), architecture=cfg.model.name, class_names=names, input_spec=described.input_spec,
        num_clips=cfg.eval.num_clips, num_crops=cfg.eval.num_crops, reduce=cfg.eval.reduce,
        source=str(path), recipe=cfg,
        frame_short_side=int(prepared["short_side"]) if prepared else None,
        rebuild=functools.partial(build_model_from_config, cfg, load_weights=False),
    )


def read_training_checkpoint_or_none(path: Path) -> dict[str, Any] | None:
    """The state of an ``snl-video train`` checkpoint at ``path``, or None for any other file
    (a foreign checkpoint given as ``--weights``)."""
    from .checkpoint import load_training_checkpoint

    try:
        state = load_training_checkpoint(path)
    except ValueError:
        return None
    return state if isinstance(state.get("model"), dict) and ("recipe" in state or "epoch" in state) else None


# --------------------------------------------------------------------------------------
# Registry names and foreign files
# --------------------------------------------------------------------------------------


def _class_names_for(entry: "PretrainedWeights | None", count: int) -> list[str]:
    names = entry.class_names if entry is not None else None
    if names and len(names) == count:
        return list(names)
    return generic_class_names(count)


def _known_class_list(count: int) -> list[str] | None:
    """Class names for a head of ``count`` classes, when a registry entry has them (Kinetics)."""
    from ..weights.registry import WEIGHTS, entry_for_file

    for entry in WEIGHTS:
        if entry.class_names and len(entry.class_names) == count:
            return list(entry.class_names)
    return None


def _from_registry_entry(model: nn.Module, entry: "PretrainedWeights", *, num_classes: int, source: str,
                         architecture: str, borrow_names: bool) -> InferenceModel:
    """``borrow_names``: an entry without class names takes another entry's list of that
    length (a foreign file; a registry name keeps generic names, as its notes say)."""
    names = _class_names_for(entry, num_classes)
    if borrow_names and names[0] == "class_0":
        names = _known_class_list(num_classes) or names
    spec = entry.input_spec
    if spec.fps is not None:  # recorded, not applied: say so rather than score silently off-protocol
        logger.warning(
            "%s was trained and published on clips resampled to %g fps; snl-video takes frames at each video's own "
            "rate (resampling is not implemented), so on a 25 fps video a %d-frame clip spans %.2f s instead of "
            "%.2f s and scores can differ from the published ones", source, spec.fps, spec.num_frames,
            spec.num_frames * spec.sampling_stride / 25.0, spec.num_frames * spec.sampling_stride / spec.fps)
    return InferenceModel(model=model.eval(), architecture=architecture, class_names=names,
                          input_spec=entry.input_spec, num_clips=entry.eval_num_clips, num_crops=entry.eval_num_crops,
                          reduce="mean_prob", source=source)


#: What a foreign file with no registry entry is assumed to want (a warning says so).
_GUESSED_INPUT = InputSpec(num_frames=16, sampling_stride=1, crop_size=112, mean=HARA_KINETICS_NORMALIZATION.mean,
                           std=HARA_KINETICS_NORMALIZATION.std)


def _from_weights(weights: str | os.PathLike[str], *, allow_unsafe_pickle: bool) -> InferenceModel:
    """A registry name, or a foreign checkpoint file (its registry entry found by file name,
    or its architecture by its tensors)."""
    from ..models import build_model
    from ..weights import get_weights, list_weights
    from ..weights.formats import read_checkpoint
    from ..weights.registry import WEIGHTS, entry_for_file

    name = str(weights)
    if not Path(name).is_file():
        if name not in list_weights():
            raise MissingFileError(f"--weights {name!r} is neither an existing file nor a registry name "
                                    "(`snl-video weights list` shows the names)")
        registered = get_weights(name)
        model = build_model(registered.architecture, num_classes=registered.num_classes, pretrained=name,
                            **dict(registered.inference_options))
        loaded = _from_registry_entry(model, registered, num_classes=registered.num_classes, source=name,
                                      architecture=registered.architecture, borrow_names=False)
        loaded.rebuild = _rebuild(registered.architecture, registered.num_classes, registered,
                                  {**dict(registered.model_options), **dict(registered.inference_options)})
        return loaded
    path = Path(name)
    detected = read_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle)
    named = next((e for e in WEIGHTS if e.file_name == path.name), None)
    options: dict[str, Any] = dict(named.model_options) if named is not None else {}
    arch = named.architecture if named is not None else _architecture_of_file(path, detected)
    if arch is None:
        raise InvalidValueError(f"{path}: {detected.describe()} matches no registered architecture (`snl-video weights "
                         "inspect` shows what it holds); load it with a recipe (pretrained: FILE) and train, or "
                         "use a registry name")
    num_classes = detected.num_classes
    if num_classes is None:
        raise InvalidValueError(f"{path} has no classifier head: it cannot predict classes; pass --head-from CKPT "
                         "(eval) or a checkpoint with a head")
    # its registry entry, else one of the same family (format + architecture): its input spec and test-time
    # head; the same rule fine-tuning from a file uses (weights.entry_for_file)
    entry = named or entry_for_file(path.name, architecture=arch, format=detected.format)
    if entry is not None:
        options.update(entry.inference_options)
    model = build_model(arch, num_classes=num_classes, pretrained=path, **options)
    rebuild = _rebuild(arch, num_classes, named, options)
    if entry is not None:
        loaded = _from_registry_entry(model, entry, num_classes=num_classes, source=str(path), architecture=arch,
                                      borrow_names=True)
        loaded.rebuild = rebuild
        return loaded
    logger.warning("%s: no registry entry for %s %s files; assuming 16x112 clips with 3D-ResNets-PyTorch's "
                   "Kinetics mean/std", path, detected.format, arch)
    names = _known_class_list(num_classes) or generic_class_names(num_classes)
    return InferenceModel(model=model.eval(), architecture=arch, class_names=names, input_spec=_GUESSED_INPUT,
                          num_clips=10, num_crops=3, reduce="mean_prob", source=str(path), input_known=False,
                          rebuild=rebuild)


def _architecture_of_file(path: Path, detected: "DetectedCheckpoint") -> str | None:
    """The registered architecture a foreign file not named as a registry file holds, by its tensors.

    Several architectures can share one network and differ only in the clip they are fed
    (X3D-XS / -S / -M: 4x12, 13x6 and 16x5 frames). Taking the first would feed an X3D-M file
    X3D-XS clips with no error, so a tie between registry entries of the file's format whose
    input specs differ is refused, naming the file names that settle it. ``None`` when no
    architecture fits.
    """
    from ..models import fitting_model_names
    from ..weights.formats import convert_state
    from ..weights.registry import WEIGHTS

    fitting = fitting_model_names(convert_state(detected))
    if not fitting:
        return None
    family = [e for e in WEIGHTS if e.format == detected.format and e.architecture in fitting]
    specs = {(e.input_spec.num_frames, e.input_spec.sampling_stride, e.input_spec.crop_size, e.input_spec.mean,
              e.input_spec.std, e.input_spec.value_scale) for e in family}
    if len({e.architecture for e in family}) > 1 and len(specs) > 1:
        choices = "; ".join(f"{e.architecture}: {e.input_spec.num_frames}x{e.input_spec.sampling_stride} frames at "
                            f"{e.input_spec.crop_size}, file name {e.file_name}" for e in family)
        raise InvalidValueError(
            f"{path}: its tensors fit {' / '.join(dict.fromkeys(e.architecture for e in family))}, which share one "
            f"network but are fed different clips ({choices}), and its file name is none of theirs, so which clip "
            "it expects cannot be told: rename (or link) the file to the file name of the model it is, or copy it "
            "into the weights cache under that name and pass the registry name (`snl-video weights list`)"
        )
    return family[0].architecture if family else fitting[0]


def _rebuild(architecture: str, num_classes: int, entry: "PretrainedWeights | None",
             options: dict[str, Any]) -> Callable[[], nn.Module]:
    """A builder of the network weights of ``architecture`` were loaded into, without the weights
    (the options and non-local blocks the registry ``entry`` of the file implies)."""
    from ..models import build_model

    blocks = dict(entry.nonlocal_blocks) if entry is not None and entry.nonlocal_blocks is not None else None
    return functools.partial(build_model, architecture, num_classes=num_classes, nonlocal_blocks=blocks, **options)


# --------------------------------------------------------------------------------------
# Published folders (``snl-video publish``), local or on the Hub
# --------------------------------------------------------------------------------------


def _published_folder_or_none(weights: str | os.PathLike[str]) -> "PublishedFolder | None":
    """``weights`` read as a published folder (a local one, or ``hf://OWNER/NAME[@REV]``), or None."""
    from .publish import HUB_PREFIX, read_published_folder, resolve_hub_weights

    name = str(weights)
    if name.startswith(HUB_PREFIX):
        return read_published_folder(resolve_hub_weights(name), shown_as=name)
    if Path(name).is_dir():
        return read_published_folder(name)
    return None


def _from_published_folder(published: "PublishedFolder", *, shown_as: str, overrides: Sequence[str]) -> InferenceModel:
    """The model of a published folder: its recipe's network, every tensor's name and shape
    checked against ``model.safetensors`` (one line naming the misfits)."""
    from .builders import build_model_from_config
    from .checkpoint import describe_checkpoint
    from .state_fit import state_mismatch

    state = published.as_training_state()
    described = describe_checkpoint(state, path=shown_as, overrides=overrides)
    cfg = described.recipe
    model = build_model_from_config(cfg, load_weights=False)
    mismatch = state_mismatch(model.state_dict(), published.state_dict)
    if mismatch is not None:
        raise InvalidValueError(f"{shown_as}: model.safetensors does not fit the {cfg.model.name} its config.json "
                                f"describes: tensors {mismatch}; the folder was edited or mixes two models' files: "
                                "publish it again")
    model.load_state_dict(published.state_dict)
    protocol = published.config["eval_protocol"]
    return InferenceModel(
        model=model.eval(), architecture=cfg.model.name, class_names=list(described.class_names or []),
        input_spec=described.input_spec, num_clips=int(protocol.get("num_clips", cfg.eval.num_clips)),
        num_crops=protocol.get("num_crops", cfg.eval.num_crops), reduce=protocol.get("reduce", cfg.eval.reduce),
        source=shown_as, recipe=cfg, rebuild=functools.partial(build_model_from_config, cfg, load_weights=False),
    )


# --------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------


def load_inference_model(
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | ExperimentConfig | None = None,
    overrides: Sequence[str] = (),
    device: str | torch.device = "cpu",
    allow_unsafe_pickle: bool = False,
    crop_size: int | None = None,
) -> InferenceModel:
    """The model named by exactly one of ``checkpoint`` or ``weights``, in eval mode on ``device``.

    Args:
        checkpoint: an ``snl-video train`` checkpoint. It carries its recipe; ``config`` (a
            YAML path or a config) is only needed for one written before checkpoints did.
        weights: a registry name, a checkpoint file, a folder written by ``snl-video publish``
            (``model.safetensors`` + ``config.json``) or ``hf://OWNER/NAME[@REVISION]``, such a
            folder on the Hugging Face Hub (through ``huggingface_hub``'s cache; ``HF_HUB_OFFLINE=1``
            reads the cache only). A training checkpoint given here is
            loaded as with ``checkpoint``; a foreign file gets its registry entry's input
            spec and class names (found by file name, else by architecture and format).
        overrides: dotted ``key=value`` changes to the recipe (e.g. ``data.num_frames=32``).
        allow_unsafe_pickle: unpickle a foreign file without restrictions (trusted files only).
        crop_size: a test crop other than the model's own (:meth:`InferenceModel.set_crop_size`:
            short side resized to it, then cropped; refused when the model cannot take it).
    """
    from .builders import resolve_device

    if (checkpoint is None) == (weights is None):
        raise InvalidValueError("give exactly one of --checkpoint CKPT (a training checkpoint) or --weights NAME|FILE")
    if checkpoint is not None:
        from .checkpoint import load_training_checkpoint

        state = load_training_checkpoint(checkpoint)
        loaded = _from_training_checkpoint(state, checkpoint, config=config, overrides=overrides)
    else:
        if config is not None:
            raise InvalidValueError("--config goes with --checkpoint; --weights carries its own spec")
        assert weights is not None  # exactly one of checkpoint/weights (checked above), and not checkpoint
        published = _published_folder_or_none(weights)
        training_state = read_training_checkpoint_or_none(Path(weights)) if Path(str(weights)).is_file() else None
        if published is not None:
            loaded = _from_published_folder(published, shown_as=str(weights), overrides=overrides)
        elif training_state is not None:
            loaded = _from_training_checkpoint(training_state, weights, config=None, overrides=overrides)
        else:
            if overrides:
                raise InvalidValueError(f"dotted overrides {list(overrides)} change a training recipe; --weights "
                                 f"{weights} has none")
            loaded = _from_weights(weights, allow_unsafe_pickle=allow_unsafe_pickle)
    if crop_size is not None:
        loaded.set_crop_size(crop_size)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    loaded.model.to(dev)
    loaded.device = dev
    logger.debug("model: %s", loaded.describe())
    return loaded
