"""The model registry: ``build_model(name, ...)`` and ``list_models(pattern)``.

Each entry is a function returning a spec (pure data): a :class:`~.resnet3d.ResNet3DSpec`
(the one-pathway 3D ResNets), a :class:`~.slowfast.SlowFastSpec` (two ResNet pathways with
lateral connections) or an :class:`~.x3d.X3DSpec`; :data:`MODEL_CLASSES` says which module
each spec type builds. Its keyword arguments are the model's options (e.g. ``conv1_t_size``
for Hara's ResNets, ``dropout`` for pytorchvideo's, ``setting`` for SlowFast). An entry may
record the clip ``(T, H, W)`` its architecture was published at (``input_size``; ``snl-video
profile`` uses it by default). Registering a name twice is an error.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence, Union

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError
from . import architectures as arch
from .placement import NonLocalSpec, insert_nonlocal_blocks
from .resnet3d import ResNet3D, ResNet3DSpec
from .slowfast import SlowFast3D, SlowFastSpec, slowfast_resnet50
from .torchvision_video import TORCHVISION_BASELINES, TorchvisionVideo, TorchvisionVideoSpec
from .x3d import X3D, X3DSpec, x3d_spec

if TYPE_CHECKING:
    from snl_video.weights import LoadReport, PretrainedWeights

logger = logging.getLogger(__name__)

__all__ = [
    "ModelEntry",
    "WeightsImplied",
    "weights_implied",
    "ModelSpec",
    "MODEL_CLASSES",
    "model_from_spec",
    "register_model",
    "list_models",
    "model_entry",
    "build_model",
    "load_backbone_weights",
    "backbone_signature",
    "registered_signature",
    "fitting_model_names",
    "guess_model_name",
]

ModelSpec = Union[ResNet3DSpec, SlowFastSpec, X3DSpec, TorchvisionVideoSpec]
#: The module class each spec type builds (``cls(spec, num_classes=...)``).
MODEL_CLASSES: dict[type, type[nn.Module]] = {
    ResNet3DSpec: ResNet3D,
    SlowFastSpec: SlowFast3D,
    X3DSpec: X3D,
    TorchvisionVideoSpec: TorchvisionVideo,
}


def model_from_spec(spec: ModelSpec, *, num_classes: int) -> nn.Module:
    """The (randomly initialised, block-free) model of ``spec`` with a ``num_classes`` head."""
    cls = MODEL_CLASSES.get(type(spec))
    if cls is None:
        raise TypeError(f"no model class for a {type(spec).__name__}; known specs: {', '.join(t.__name__ for t in MODEL_CLASSES)}")
    return cls(spec, num_classes=num_classes)


@dataclass(frozen=True)
class ModelEntry:
    """A registered backbone: its spec function, where its architecture comes from and,
    where the architecture is tied to one, the clip ``(T, H, W)`` it was published at."""

    name: str
    make_spec: Callable[..., ModelSpec]
    family: str
    reference: str
    input_size: tuple[int, int, int] | None = None

    def options(self) -> dict[str, Any]:
        """The model's options with their defaults."""
        return {
            n: p.default
            for n, p in inspect.signature(self.make_spec).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, family: str, reference: str, input_size: tuple[int, int, int] | None = None
) -> Callable[[Callable[..., ModelSpec]], Callable[..., ModelSpec]]:
    """Decorator registering a spec function under ``name`` (a duplicate name is an error)."""

    def decorator(make_spec: Callable[..., ModelSpec]) -> Callable[..., ModelSpec]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].make_spec.__qualname__})")
        _REGISTRY[name] = ModelEntry(name, make_spec, family, reference, input_size)
        return make_spec

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern``, in registration order."""
    return [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name is an error listing the valid ones."""
    if name not in _REGISTRY:
        raise InvalidValueError(f"unknown model {name!r}; valid models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build_model(
    name: str,
    *,
    num_classes: int,
    nonlocal_blocks: NonLocalSpec | None = None,
    pretrained: "str | Path | PretrainedWeights | Mapping[str, Any] | None" = None,
    pretrained_ignore: Sequence[str] = (),
    **kw: Any,
) -> nn.Module:
    """Build backbone ``name`` with a ``num_classes`` head, optional non-local blocks and weights.

    This is the one fine-tuning path: the model is built, non-local blocks are placed, and
    then ``pretrained`` is loaded through :func:`snl_video.weights.load_pretrained` (format
    detected, keys converted, 2-D kernels inflated). The head (``fc``) is re-initialised
    when its class count differs, newly placed blocks keep their identity initialisation,
    and any other missing, mis-shaped or unexpected tensor is an error listing them — never
    a silent partial load. A checkpoint made for another registered architecture (an r3d18
    file into r3d50, a pytorchvideo I3D file into slow_r50) is an error naming both.
    The :class:`~snl_video.weights.LoadReport` is logged and kept as ``model.load_report``.

    Args:
        name: one of :func:`list_models`.
        num_classes: size of the classification head.
        nonlocal_blocks: ``None`` (no blocks), a kind name (the paper's placement: one
            block before the last residual block of res4, ``C_s = C/2``) or a placement
            spec (see :mod:`snl_video.models.placement`).
        pretrained: a checkpoint file of any format :mod:`snl_video.weights` reads, a
            weights registry name (``snl-video weights list``), or a checkpoint / state
            dict already in memory.
        pretrained_ignore: fnmatch patterns of checkpoint or model keys to skip (e.g.
            ``("*non_local_block*",)`` to load an mmaction2 I3D-NL backbone without its blocks).
        **kw: the model's options (see ``model_entry(name).options()``).
    """
    entry = model_entry(name)
    valid = entry.options()
    kw = _with_weights_options(name, pretrained, kw)
    unknown = sorted(set(kw) - set(valid))
    if unknown:
        raise InvalidValueError(
            f"unknown option(s) {unknown} for model {name!r}; valid options: "
            + (", ".join(f"{k}={v!r}" for k, v in valid.items()) or "none")
        )
    model = model_from_spec(entry.make_spec(**kw), num_classes=num_classes)
    # torch's stubs type Module.__setattr__ values as Tensor | Module; any attribute is fine at run time
    model.load_report = None  # type: ignore[assignment]
    weights_entry = _registry_entry(pretrained)
    if nonlocal_blocks is None and weights_entry is not None and weights_entry.nonlocal_blocks is not None:
        # A registry checkpoint that holds non-local blocks (BAT-Video-Classification's) places them.
        logger.info("%s: placing its non-local blocks %s", weights_entry.name, dict(weights_entry.nonlocal_blocks))
        nonlocal_blocks = dict(weights_entry.nonlocal_blocks)
    if nonlocal_blocks is not None:
        insert_nonlocal_blocks(model, nonlocal_blocks)
    if pretrained is not None:
        # After placement, so a checkpoint that has the same blocks loads them too.
        model.load_report = load_backbone_weights(  # type: ignore[assignment]  # (as above)
            model, pretrained, ignore=pretrained_ignore, model_name=name
        )
    elif pretrained_ignore:
        raise InvalidValueError(f"pretrained_ignore={tuple(pretrained_ignore)!r} was given without pretrained weights")
    return model


def _registry_entry(source: Any) -> "PretrainedWeights | None":
    """The weights registry entry ``source`` names (an entry, or a name that is not a file), else None."""
    from snl_video.weights.registry import PretrainedWeights, get_weights, list_weights

    if isinstance(source, PretrainedWeights):
        return source
    if isinstance(source, (str, Path)) and not Path(source).is_file() and str(source) in list_weights():
        return get_weights(str(source))
    return None


@dataclass(frozen=True)
class WeightsImplied:
    """What a weights registry entry implies about the model built to load it.

    ``model_options``: options the checkpoint needs (e.g. ``shortcut="A"`` for Hara's 2017
    ResNet-18/34, ``lfu`` for the FFC files), only when the model is one the entry fits;
    ``nonlocal_blocks``: the placement spec of the blocks the checkpoint holds (BAT's), or
    ``None``. A run's record holds these explicitly (``engine.builders.resolve_recipe``), so
    the trained model can be rebuilt without the registry entry or its file.
    """

    weights: str
    model_options: tuple[tuple[str, Any], ...]
    nonlocal_blocks: Mapping[str, Any] | None


def weights_implied(name: str, pretrained: Any) -> WeightsImplied | None:
    """What building model ``name`` to load ``pretrained`` implies, when ``pretrained`` is a
    weights registry entry (or its name); ``None`` for a file, a state dict or nothing."""
    entry = _registry_entry(pretrained)
    if entry is None:
        return None
    fits = name in (entry.architecture, *entry.also_fits)
    return WeightsImplied(
        weights=entry.name,
        model_options=tuple(entry.model_options) if fits else (),
        nonlocal_blocks=entry.nonlocal_blocks,
    )


def _with_weights_options(name: str, pretrained: Any, kw: dict[str, Any]) -> dict[str, Any]:
    """``kw`` plus the model options a registry checkpoint needs (e.g. ``shortcut="A"``);
    an option given with another value is an error naming both."""
    implied = weights_implied(name, pretrained)
    if implied is None or not implied.model_options:
        return kw
    out = dict(kw)
    for key, value in implied.model_options:
        if key not in out:
            logger.info("%s: building %s with %s=%r, as the checkpoint needs", implied.weights, name, key, value)
            out[key] = value
        elif out[key] != value:
            raise InvalidValueError(f"{implied.weights} needs {name} built with {key}={value!r}, but {key}={out[key]!r} was "
                                    f"given: set model.options.{key}={value} or leave it out")
    return out


def load_backbone_weights(
    model: nn.Module,
    source: "str | Path | PretrainedWeights | Mapping[str, Any]",
    *,
    ignore: Sequence[str] = (),
    model_name: str | None = None,
) -> "LoadReport":
    """Load pretrained weights into a built ``model`` (what ``build_model(pretrained=...)`` does).

    ``source`` is a path, a weights registry name or an in-memory checkpoint / state dict.
    ``model_name`` (the registry name the model was built from) lets errors name the
    architecture; when a weights registry name is used, its recorded architecture must
    equal it. Returns the :class:`~snl_video.weights.LoadReport`; raises
    :class:`~snl_video.weights.WeightsLoadError` (or its subclass
    ``WrongArchitectureError``) without touching the model when the weights do not fit.
    """
    # Lazy: snl_video.weights must not be needed to import the models.
    from snl_video.weights import load_pretrained
    from snl_video.weights.errors import WrongArchitectureError

    from .weights_fit import check_weights_fit

    entry = _registry_entry(source)
    if entry is not None and model_name is not None:
        recorded = entry.architecture
        if model_name not in (recorded, *entry.also_fits):
            raise WrongArchitectureError(
                f"registry weights {entry.name!r} are for {recorded}, but the model is {model_name}: "
                f"set model.name={recorded} (Python: build_model({recorded!r}, ...)) or pick weights made for "
                f"{model_name} (`snl-video weights list`)"
            )

    def check(detected: Any, state: dict[str, Tensor]) -> None:
        check_weights_fit(model, detected, state, ignore=ignore, model_name=model_name)

    return load_pretrained(
        model,
        source,
        head_prefixes=tuple(getattr(model, "head_prefixes", ("fc.",))),
        ignore=tuple(ignore),
        new_module_patterns=("nonlocal_blocks.*",),
        check=check,
    )


def backbone_signature(state: Mapping[str, Any], ignore: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Key → shape of the backbone tensors (no head, no non-local blocks, none ignored, and no
    BatchNorm ``num_batches_tracked``: checkpoints older than PyTorch 0.4 lack them)."""
    return {
        k: tuple(v.shape)
        for k, v in state.items()
        if not k.startswith(("fc.", "nonlocal_blocks.")) and "non_local" not in k
        and not k.endswith("num_batches_tracked")
        and not any(fnmatch.fnmatchcase(k, p) for p in ignore)
    }


@functools.lru_cache(maxsize=None)
def _registered_signature_all(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    with torch.device("meta"):
        model = model_from_spec(model_entry(name).make_spec(), num_classes=1)
    return tuple(backbone_signature(model.state_dict(), ()).items())


def registered_signature(name: str, ignore: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Backbone signature of registered model ``name`` with default options (built on the meta device)."""
    return {k: v for k, v in _registered_signature_all(name) if not any(fnmatch.fnmatchcase(k, p) for p in ignore)}


def fitting_model_names(state: Mapping[str, Any]) -> list[str]:
    """Every registered architecture (default options) whose backbone tensors, names and shapes,
    match ``state`` (a state dict in snl_video key names), in registration order.

    More than one can fit: X3D-XS, -S and -M share one network and differ only in the clip
    they are fed, and a BAT backbone is its plain backbone plus blocks. Callers that pick an
    input spec from the architecture must treat such a tie as ambiguous.
    """
    theirs = backbone_signature(state, ())
    return [name for name in list_models() if registered_signature(name, ()) == theirs]


def guess_model_name(state: Mapping[str, Any]) -> str | None:
    """The first registered architecture (default options) whose backbone tensors, names and
    shapes match ``state`` (a state dict in snl_video key names); None when none does.
    :func:`fitting_model_names` lists them all."""
    names = fitting_model_names(state)
    return names[0] if names else None


# --------------------------------------------------------------------------------------
# The registered backbones.
# --------------------------------------------------------------------------------------

_HARA = "Hara et al., CVPR 2018 (kenshohara/3D-ResNets-PyTorch, models/resnet.py)"


def _register_hara(depth: int) -> None:
    def make_spec(
        *, conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False, widen_factor: float = 1.0,
        shortcut: str = "B",
    ) -> ResNet3DSpec:
        return arch.hara_resnet(
            depth,
            conv1_t_size=conv1_t_size,
            conv1_t_stride=conv1_t_stride,
            no_max_pool=no_max_pool,
            widen_factor=widen_factor,
            shortcut=shortcut,
        )

    make_spec.__qualname__ = f"r3d{depth}"
    make_spec.__doc__ = f"Hara's 3D ResNet-{depth}."
    register_model(f"r3d{depth}", family="hara", reference=_HARA)(make_spec)


def _register_pytorchvideo(variant: str) -> None:
    def make_spec(*, dropout: float = 0.5, head_window: Sequence[int] | None = None) -> ResNet3DSpec:
        """``head_window``: ``(h, w)`` for pytorchvideo's windowed head (average (T, h, w) windows at
        stride 1, score each, average the scores; their hub models use (7, 7), which changes
        nothing up to 224² crops); None: a global average."""
        spec = arch.pytorchvideo_resnet50(variant, dropout=dropout)
        if head_window is None:
            return spec
        window = tuple(int(v) for v in head_window)
        if len(window) != 2 or min(window) < 1:
            raise InvalidValueError(f"{variant}_r50 option head_window must be (h, w), two positive ints, or None for a "
                                    f"global average, got {head_window!r}")
        return dataclasses.replace(spec, head_window=window)

    make_spec.__qualname__ = f"{variant}_r50"
    register_model(
        f"{variant}_r50", family="pytorchvideo", reference=f"pytorchvideo.models.hub.{variant}_r50"
    )(make_spec)


def _register_torchvision(variant: str) -> None:
    def make_spec(*, dropout: float = 0.0) -> ResNet3DSpec:
        return arch.torchvision_video_resnet18(variant, dropout=dropout)

    make_spec.__qualname__ = f"{variant}_18"
    register_model(
        f"{variant}_18", family="torchvision", reference=f"torchvision.models.video.{variant}_18"
    )(make_spec)


_FFC = "Chi, Jiang, Mu, NeurIPS 2020 (pkumivision/FFC, model_zoo/ffc.py, ffc_resnet.py), on the {} trunk"


def _register_ffc(name: str, trunk: Callable[[], ResNet3DSpec], trunk_name: str) -> None:
    def make_spec(*, ratio_global: float = 0.25, lfu: bool = False, fft: Literal["2d", "3d"] = "2d") -> ResNet3DSpec:
        return arch.ffc_resnet(trunk(), ratio_global=ratio_global, lfu=lfu, fft=fft)

    make_spec.__qualname__ = name
    make_spec.__doc__ = f"FFC ResNet-50 on the {trunk_name} trunk (global share ratio_global, lfu, fft 2d|3d)."
    register_model(name, family="ffc", reference=_FFC.format(trunk_name))(make_spec)


def _register_ffc_hara_basic(depth: int) -> None:
    """``ffc_r3d{depth}``: Hara's basic-block trunk (10 or 18) with FFC basic blocks.

    The trunk keeps ``r3d{depth}``'s options (``conv1_t_size``, ``conv1_t_stride``,
    ``no_max_pool``, ``widen_factor``; not ``shortcut``: an FFC shortcut is an FFC conv) and
    adds FFC's. ``ratio_global`` defaults to 0.25, as every ``ffc_*`` entry (the released
    ImageNet checkpoints); pkumivision/FFC's ``main.py`` trains ``ffc_resnet18/34`` at
    ``--ratio 0.5`` by default, and ``lfu`` is off there unless ``--lfu`` is given.
    """

    def make_spec(
        *, conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False, widen_factor: float = 1.0,
        ratio_global: float = 0.25, lfu: bool = False, fft: Literal["2d", "3d"] = "2d",
    ) -> ResNet3DSpec:
        trunk = arch.hara_resnet(
            depth, conv1_t_size=conv1_t_size, conv1_t_stride=conv1_t_stride, no_max_pool=no_max_pool,
            widen_factor=widen_factor,
        )
        return arch.ffc_resnet(trunk, ratio_global=ratio_global, lfu=lfu, fft=fft)

    name = f"ffc_r3d{depth}"
    make_spec.__qualname__ = name
    make_spec.__doc__ = (
        f"FFC ResNet-{depth} on Hara's r3d{depth} trunk (its options, plus global share ratio_global, lfu, fft 2d|3d)."
    )
    register_model(name, family="ffc", reference=_FFC.format(f"r3d{depth}"))(make_spec)


def _register_bat(variant: str) -> None:
    def make_spec(*, dropout: float = 0.5) -> ResNet3DSpec:
        return arch.bat_resnet50(variant, dropout=dropout)

    make_spec.__qualname__ = f"bat_{variant}_r50"
    register_model(
        f"bat_{variant}_r50",
        family="bat",
        reference=f"Chi et al., CVPR 2020 (BA-Transform/BAT-Video-Classification, models/resnet.py {variant}_resnet50)",
    )(make_spec)


for _depth in arch.HARA_DEPTHS:
    _register_hara(_depth)
for _variant in ("i3d", "slow", "c2d"):
    _register_pytorchvideo(_variant)
for _variant in ("r3d", "mc3", "r2plus1d"):
    _register_torchvision(_variant)
_register_ffc("ffc_c2d_r50", lambda: arch.pytorchvideo_resnet50("c2d"), "c2d_r50")
_register_ffc("ffc_i3d_r50", lambda: arch.pytorchvideo_resnet50("i3d"), "i3d_r50")
_register_ffc("ffc_r3d50", lambda: arch.hara_resnet(50), "r3d50")
for _depth in (10, 18):
    _register_ffc_hara_basic(_depth)
for _variant in ("c2d", "i3d"):
    _register_bat(_variant)


_PTV_SLOWFAST = "Feichtenhofer et al., ICCV 2019; pytorchvideo.models.slowfast.create_slowfast (PySlowFast SLOWFAST_{8x8,4x16}_R50)"


# input_size: the training clip (32 fast frames, 224² crops); the published GFLOPs are for 256² test views.
@register_model("slowfast_r50", family="slowfast", reference=_PTV_SLOWFAST, input_size=(32, 224, 224))
def _slowfast_r50(*, setting: Literal["8x8", "4x16"] = "8x8", dropout: float = 0.5,
                  head_window: Sequence[int] | None = None) -> SlowFastSpec:
    """SlowFast R50: ``setting`` 8x8 (α 4, fusion kernel 7) or 4x16 (α 8, fusion kernel 5); one
    32-frame clip in, the slow pathway subsampled inside (see :mod:`.slowfast`). ``head_window``:
    pytorchvideo's windowed head ((7, 7) in their hub model), None a global average."""
    spec = slowfast_resnet50(arch.pytorchvideo_resnet50("slow", dropout=dropout), setting=setting, dropout=dropout)
    try:
        return spec if head_window is None else dataclasses.replace(spec, head_window=tuple(head_window))
    except (ValueError, TypeError) as exc:
        raise InvalidValueError(f"slowfast_r50 option {exc}") from None


_X3D = "Feichtenhofer, CVPR 2020; pytorchvideo.models.x3d.create_x3d (hub x3d_{}: {} clips)"
# Training clips (T, H, W) of the published models (the X3D paper's Table 3, where their
# GFLOPs are counted; pytorchvideo's hub builders' input_clip_length / input_crop_size).
# They are tested at larger crops (182², 182², 256²), which the input spec of weights records.
_X3D_INPUTS: dict[str, tuple[int, int, int]] = {"xs": (4, 160, 160), "s": (13, 160, 160), "m": (16, 224, 224)}


def _register_x3d(size: str) -> None:
    def make_spec(*, dropout: float = 0.5,
                  head_pool_input: tuple[int, int, int] | None = _X3D_INPUTS[size]) -> X3DSpec:
        return x3d_spec(dropout=dropout, head_pool_input=head_pool_input)

    make_spec.__qualname__ = f"x3d_{size}"
    make_spec.__doc__ = (f"X3D-{size.upper()} (the XS/S/M trunk; its clip is {'x'.join(map(str, _X3D_INPUTS[size]))}, "
                         f"which sizes the head's window by default: option head_pool_input, the training clip "
                         f"(T, H, W), or None for a global average).")
    t, h, _ = _X3D_INPUTS[size]
    register_model(
        f"x3d_{size}", family="x3d", reference=_X3D.format(size, f"{t}x{h}x{h}"), input_size=_X3D_INPUTS[size]
    )(make_spec)


for _size in _X3D_INPUTS:
    _register_x3d(_size)


# torchvision's transformer / separable baselines: built by torchvision, keys and forward its own;
# non-local placement refused (see :mod:`.torchvision_video`). input_size: the weights' clip.
def _register_torchvision_baseline(arch: str) -> None:
    def make_spec(*, dropout: float | None = None) -> TorchvisionVideoSpec:
        return TorchvisionVideoSpec(arch, dropout=dropout)

    make_spec.__qualname__ = arch
    make_spec.__doc__ = f"torchvision.models.video.{arch} (dropout None: torchvision's default)."
    register_model(
        arch, family="torchvision-baseline", reference=f"torchvision.models.video.{arch}", input_size=(16, 224, 224)
    )(make_spec)


for _arch in TORCHVISION_BASELINES:
    _register_torchvision_baseline(_arch)
