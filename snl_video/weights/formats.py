"""Recognise a checkpoint's format from its container and key signature, and unwrap it.

Checkpoints of the common video backbones come in a handful of containers (a dict with
``state_dict`` and ``arch``, one with ``model_state``, a bare state dict, a Caffe2
``blobs`` dict of numpy arrays ...) and key vocabularies (``layer1.0.conv1``,
``blocks.1.res_blocks.0.branch2.conv_a``, ``s2.pathway0_res0.branch2.a``,
``res2_0_branch2a_w`` ...). :func:`detect_format` looks at both and returns a
:class:`DetectedCheckpoint`: the format's name, the state dict as tensors (``module.``
stripped), metadata, the class count read off the classifier's shape, and a rough
architecture guess used by error messages.

Converting a format's key names into snl_video's model names is a separate, pure step:
:data:`CONVERTERS` maps a format name to a ``state -> state`` function, and
:func:`register_converter` lets the models layer add the ones it needs.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, get_args

import numpy as np
import torch

from .errors import UnknownFormatError, WeightsError
from .io import load_checkpoint

logger = logging.getLogger(__name__)

__all__ = [
    "FormatName",
    "KNOWN_FORMATS",
    "ArchitectureGuess",
    "DetectedCheckpoint",
    "detect_format",
    "read_checkpoint",
    "guess_architecture",
    "strip_prefix",
    "CONVERTERS",
    "register_converter",
    "convert_state",
]

StateDict = dict[str, torch.Tensor]

FormatName = Literal[
    "hara2017",  # 3D-ResNets-PyTorch (Hara et al.) 2017 release
    "hara2020",  # 3D-ResNets-PyTorch 2020 release
    "pytorchvideo",  # pytorchvideo hub .pyth (I3D / Slow / C2D R50)
    "torchvision_video",  # torchvision r3d_18 / mc3_18 / r2plus1d_18
    "mmaction2",  # mmaction2 recognizer checkpoints (backbone. / cls_head.)
    "slowfast",  # PySlowFast .pyth
    "caffe2",  # Caffe2 / Detectron .pkl (blobs dict of numpy arrays)
    "torchvision_2d",  # torchvision ImageNet ResNets (2-D, to be inflated)
    "ffc",  # pkumivision/FFC ImageNet FFC-ResNets (2-D, to be inflated; main.py's container)
    "bat_video",  # BA-Transform/BAT-Video-Classification Kinetics C2D / I3D (+ BAT blocks)
    "generic",  # any dict of tensors
]
KNOWN_FORMATS: tuple[str, ...] = get_args(FormatName)

# Containers under which a generic state dict may sit, in order of preference.
_GENERIC_CONTAINER_KEYS = ("state_dict", "model_state", "model", "state", "model_state_dict", "net", "network")


@dataclass(frozen=True)
class ArchitectureGuess:
    """What the keys and shapes of a state dict suggest about the network.

    ``blocks_per_stage`` counts residual blocks in the four ResNet stages; ``depth`` is the
    usual ResNet depth derived from it (3 convs per bottleneck block, 2 per basic block,
    plus stem and classifier). ``stem_time_kernel`` is the temporal size of the first
    conv (``None`` for a 2-D stem).
    """

    blocks_per_stage: tuple[int, ...] = ()
    bottleneck: bool | None = None
    stem_time_kernel: int | None = None
    has_nonlocal: bool = False

    @property
    def depth(self) -> int | None:
        if len(self.blocks_per_stage) != 4 or self.bottleneck is None:
            return None
        return (3 if self.bottleneck else 2) * sum(self.blocks_per_stage) + 2

    def describe(self) -> str:
        if not self.blocks_per_stage:
            return "an unrecognised network (no ResNet stages found)"
        kind = "bottleneck" if self.bottleneck else "basic-block" if self.bottleneck is not None else "?"
        depth = f"ResNet-{self.depth}" if self.depth else "ResNet-like"
        stem = (
            "2-D stem"
            if self.stem_time_kernel is None
            else f"3-D stem with temporal kernel {self.stem_time_kernel}"
        )
        nl = ", with non-local blocks" if self.has_nonlocal else ""
        blocks = "-".join(map(str, self.blocks_per_stage))
        return f"{depth} ({kind}, blocks per stage {blocks}, {stem}{nl})"


@dataclass(frozen=True)
class DetectedCheckpoint:
    """A checkpoint recognised and unwrapped into a flat state dict of tensors."""

    format: FormatName
    state_dict: StateDict
    metadata: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    head_keys: tuple[str, ...] = ()
    architecture: ArchitectureGuess = field(default_factory=ArchitectureGuess)
    container_keys: tuple[str, ...] = ()
    source: str = "<in memory>"

    @property
    def num_tensors(self) -> int:
        return len(self.state_dict)

    @property
    def num_parameters(self) -> int:
        """Elements of all floating-point tensors except BN running statistics and counters."""
        return sum(
            t.numel()
            for k, t in self.state_dict.items()
            if t.is_floating_point() and not k.endswith(_BUFFER_SUFFIXES)
        )

    def describe(self) -> str:
        return f"{self.format} checkpoint of {self.architecture.describe()}"


_BUFFER_SUFFIXES = (
    "running_mean",
    "running_var",
    "num_batches_tracked",
    "_bn_rm",
    "_bn_riv",
)


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Drop ``prefix`` from every key if *all* keys carry it (e.g. ``module.`` of DataParallel)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _tensor_state(obj: Mapping[str, Any], *, where: str) -> StateDict:
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UnknownFormatError(
            f"{where} should map names to tensors, but {len(bad)} entries are not tensors "
            f"(e.g. {bad[:3]!r} of type {type(obj[bad[0]]).__name__})"
        )
    state = strip_prefix(obj, "module.")
    return state


def _first_dim(state: Mapping[str, torch.Tensor], key: str) -> int | None:
    t = state.get(key)
    return int(t.shape[0]) if t is not None and t.dim() >= 1 else None


# --- architecture guesses ---------------------------------------------------------------

# (regex capturing "stage id, block index", regex for a key only bottleneck blocks have).
# Stages are ordered by their id, whatever it starts at: pytorchvideo's I3D and C2D put a
# pooling layer at blocks.2, so their stages are blocks.1,3,4,5 (Slow: blocks.1-4).
_STAGE_PATTERNS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    # torchvision / Hara / mmaction2 (after backbone.): layer1..4.J.
    (re.compile(r"^(?:backbone\.)?layer(\d+)\.(\d+)\."), re.compile(r"^(?:backbone\.)?layer\d+\.\d+\.conv3\.")),
    # pytorchvideo: blocks.S.res_blocks.J.
    (re.compile(r"^blocks\.(\d+)\.res_blocks\.(\d+)\."), re.compile(r"\.branch2\.conv_c\.")),
    # PySlowFast: sS.pathway0_resJ.
    (re.compile(r"^s(\d+)\.pathway0_res(\d+)\."), re.compile(r"\.branch2\.c\.")),
    # Caffe2: resS_J_branch2*
    (re.compile(r"^res(\d+)_(\d+)_branch2"), re.compile(r"^res\d+_\d+_branch2c_")),
)

_STEM_KEYS = (
    "conv1.weight",
    "backbone.conv1.conv.weight",
    "blocks.0.conv.weight",
    "s1.pathway0_stem.conv.weight",
    "conv1_w",
    "stem.0.weight",
)


def guess_architecture(state: Mapping[str, torch.Tensor]) -> ArchitectureGuess:
    """Infer ResNet stage depths, block type and stem from key names and shapes.

    Works on every format above (and on snl_video models whose names follow torchvision's
    ``layerX.Y``); used to say *which* architecture a checkpoint belongs to when it does
    not fit a model.
    """
    best: tuple[int, ArchitectureGuess] | None = None
    for stage_re, bottleneck_re in _STAGE_PATTERNS:
        blocks: dict[int, set[int]] = {}
        matched = 0
        for key in state:
            m = stage_re.match(key)
            if m:
                matched += 1
                blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        if not matched:
            continue
        per_stage = tuple(len(blocks[s]) for s in sorted(blocks))
        bottleneck = any(bottleneck_re.search(k) for k in state)
        guess = ArchitectureGuess(blocks_per_stage=per_stage, bottleneck=bottleneck)
        if best is None or matched > best[0]:
            best = (matched, guess)
    stem_t: int | None = None
    for key in _STEM_KEYS:
        t = state.get(key)
        if isinstance(t, (torch.Tensor, np.ndarray)) and t.ndim == 5:
            stem_t = int(t.shape[2])
            break
    # torchvision video stems (stem.0) are 5-D too; found by the loop above.
    has_nonlocal = any(("non_local" in k or "nonlocal" in k or k.startswith("nonlocal_")) for k in state)
    guess = best[1] if best else ArchitectureGuess()
    return ArchitectureGuess(
        blocks_per_stage=guess.blocks_per_stage,
        bottleneck=guess.bottleneck,
        stem_time_kernel=stem_t,
        has_nonlocal=has_nonlocal,
    )


# --- detection ----------------------------------------------------------------------------


def _metadata(container: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for k in keys:
        if k in container:
            v = container[k]
            out[k] = v if isinstance(v, (int, float, str, bool, type(None))) else f"<{type(v).__name__}>"
    return out


def _last_blocks_head(state: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    """pytorchvideo's head is ``blocks.<last>.proj``."""
    heads = sorted(
        (k for k in state if re.match(r"^blocks\.\d+\.proj\.(weight|bias)$", k)),
        key=lambda k: int(k.split(".")[1]),
    )
    return tuple(heads)


_BAT_NONLOCAL_KEY = re.compile(r"^(?:module\.)?layer\d\.nl\d+\.")


def _is_bat_video_state(state: Mapping[str, Any]) -> bool:
    """BAT-Video-Classification's ResNet: ``fc`` is a 1×1×1 Conv3d (5-D weight) and its
    non-local blocks sit inside the stages as ``layerX.nlJ``."""
    fc = state.get("fc.weight", state.get("module.fc.weight"))
    if isinstance(fc, torch.Tensor) and fc.dim() == 5:
        return True
    return any(_BAT_NONLOCAL_KEY.match(str(k)) for k in state)


def _detect_plain_state(state: StateDict) -> tuple[FormatName, tuple[str, ...]]:
    """Format and head keys of a bare state dict, from its key signature."""
    if "stem.0.weight" in state and any(k.startswith("layer1.0.conv1.0.") for k in state):
        return "torchvision_video", ("fc.weight", "fc.bias")
    conv1 = state.get("conv1.weight")
    if conv1 is not None and conv1.dim() == 4 and any(k.startswith("layer1.0.conv1.") for k in state):
        return "torchvision_2d", ("fc.weight", "fc.bias")
    heads = tuple(k for k in ("fc.weight", "fc.bias") if k in state)
    return "generic", heads


def detect_format(obj: Any, *, source: str = "<in memory>") -> DetectedCheckpoint:
    """Recognise what :func:`~snl_video.weights.io.load_checkpoint` returned and unwrap it.

    Raises :class:`UnknownFormatError` listing the container's top-level keys and the
    known formats when nothing matches.
    """
    if not isinstance(obj, Mapping) or not obj:
        raise UnknownFormatError(
            f"{source}: expected a dict (a checkpoint container or a state dict), found "
            f"{type(obj).__name__}{' (empty)' if isinstance(obj, Mapping) else ''}; known formats: "
            f"{', '.join(KNOWN_FORMATS)}"
        )
    top = tuple(str(k) for k in obj.keys())

    def result(fmt: FormatName, state: StateDict, heads: tuple[str, ...], meta: dict[str, Any]) -> DetectedCheckpoint:
        heads = tuple(h for h in heads if h in state)
        weight_head = next((h for h in heads if h.endswith("weight") or h.endswith("_w")), None)
        return DetectedCheckpoint(
            format=fmt,
            state_dict=state,
            metadata=meta,
            num_classes=_first_dim(state, weight_head) if weight_head else None,
            head_keys=heads,
            architecture=guess_architecture(state),
            container_keys=top,
            source=source,
        )

    # Caffe2 / Detectron: {'blobs': {name: ndarray}, ...}
    if isinstance(obj.get("blobs"), Mapping):
        return result("caffe2", *_unwrap_caffe2(obj["blobs"], source=source))

    model_state = obj.get("model_state")
    if isinstance(model_state, Mapping) and model_state:
        state = _tensor_state(model_state, where=f"{source}['model_state']")
        meta = _metadata(obj, ("epoch", "cfg"))
        if any(k.startswith("s1.pathway0_stem.") for k in state):
            return result("slowfast", state, ("head.projection.weight", "head.projection.bias"), meta)
        if any(k.startswith("blocks.") for k in state):
            return result("pytorchvideo", state, _last_blocks_head(state), meta)

    sd = obj.get("state_dict")
    if isinstance(sd, Mapping) and sd:
        keys = [str(k).removeprefix("module.") for k in sd]
        # pkumivision/FFC main.py: {'epoch', 'arch', 'state_dict', 'best_acc1', 'optimizer'};
        # BAT-Video-Classification main.py: {'epoch', 'arch', 'state_dict', 'best_prec1', 'optim'}.
        # Both have 'arch', like Hara's containers, so their key signatures are checked first.
        if any(".ffc.conv" in k for k in keys):
            state = _tensor_state(sd, where=f"{source}['state_dict']")
            meta = _metadata(obj, ("epoch", "arch"))
            best = obj.get("best_acc1")
            if isinstance(best, (int, float)) or isinstance(best, torch.Tensor) and best.numel() == 1:
                meta["best_acc1"] = float(best)
            meta["had_module_prefix"] = all(str(k).startswith("module.") for k in sd)
            return result("ffc", state, ("fc.weight", "fc.bias"), meta)
        if _is_bat_video_state(sd):
            state = _tensor_state(sd, where=f"{source}['state_dict']")
            return result("bat_video", state, ("fc.weight", "fc.bias"), _metadata(obj, ("epoch", "arch", "best_prec1")))
        if any(k.startswith("backbone.") for k in keys) and ("meta" in obj or any(k.startswith("cls_head.") for k in keys)):
            state = _tensor_state(sd, where=f"{source}['state_dict']")
            meta = _metadata(obj.get("meta") or {}, ("epoch", "iter", "mmcv_version", "mmaction2_version", "config"))
            return result("mmaction2", state, ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"), meta)
        if "arch" in obj:
            state = _tensor_state(sd, where=f"{source}['state_dict']")
            meta = _metadata(obj, ("epoch", "arch"))
            meta["had_module_prefix"] = all(str(k).startswith("module.") for k in sd)
            fmt: FormatName = "hara2020" if "scheduler" in obj else "hara2017"
            return result(fmt, state, ("fc.weight", "fc.bias"), meta)

    if _is_tensor_dict(obj):
        state = strip_prefix(obj, "module.")
        if any(".ffc.conv" in k for k in state):
            return result("ffc", state, ("fc.weight", "fc.bias"), {})
        if _is_bat_video_state(state):
            return result("bat_video", state, ("fc.weight", "fc.bias"), {})
        fmt, heads = _detect_plain_state(state)
        return result(fmt, state, heads, {})

    for key in _GENERIC_CONTAINER_KEYS:
        inner = obj.get(key)
        if _is_tensor_dict(inner):
            state = strip_prefix(inner, "module.")
            fmt, heads = _detect_plain_state(state)
            meta = _metadata(obj, ("epoch", "arch"))
            meta["container_key"] = key
            return result("generic" if fmt == "generic" else fmt, state, heads, meta)

    raise UnknownFormatError(
        f"{source}: unrecognised checkpoint container with top-level keys {list(top)[:20]!r}"
        f"{' ...' if len(top) > 20 else ''}; known formats: {', '.join(KNOWN_FORMATS)} "
        f"(a generic state dict must map names to tensors, at the top level or under one of "
        f"{', '.join(repr(k) for k in _GENERIC_CONTAINER_KEYS)})"
    )


# Caffe2 blobs that are optimiser or solver state, not weights.
_CAFFE2_NON_WEIGHT = re.compile(r"(_momentum$|^lr$|^model_iter$|^iter$|^lr_)")


def _unwrap_caffe2(
    blobs: Mapping[str, Any], *, source: str
) -> tuple[StateDict, tuple[str, ...], dict[str, Any]]:
    state: StateDict = {}
    skipped: list[str] = []
    for name, value in blobs.items():
        if _CAFFE2_NON_WEIGHT.search(str(name)):
            skipped.append(str(name))
            continue
        if not isinstance(value, np.ndarray):
            raise UnknownFormatError(
                f"{source}: Caffe2 blob {name!r} is a {type(value).__name__}, expected a numpy array"
            )
        if value.dtype.kind not in "fiub":
            raise UnknownFormatError(f"{source}: Caffe2 blob {name!r} has unsupported dtype {value.dtype}")
        state[str(name)] = torch.from_numpy(np.array(value, copy=True))
    if not state:
        raise UnknownFormatError(f"{source}: the Caffe2 'blobs' dict holds no weight arrays")
    meta: dict[str, Any] = {"skipped_blobs": len(skipped)}
    if skipped:
        logger.debug("%s: skipped %d Caffe2 solver blobs (e.g. %s)", source, len(skipped), skipped[:3])
    return state, ("pred_w", "pred_b"), meta


def read_checkpoint(path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False) -> DetectedCheckpoint:
    """Safely load a checkpoint file and detect its format (see :func:`detect_format`)."""
    obj = load_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle)
    detected = detect_format(obj, source=str(path))
    logger.info(
        "%s: %s, %d tensors, %s classes",
        path,
        detected.describe(),
        detected.num_tensors,
        detected.num_classes if detected.num_classes is not None else "unknown",
    )
    return detected


# --- key converters -----------------------------------------------------------------------

Converter = Callable[[StateDict], StateDict]


def convert_hara2017(state: StateDict) -> StateDict:
    """3D-ResNets-PyTorch 2017 keys → snl_video r3d keys: one-to-one once ``module.`` is gone.

    snl_video's r3d family keeps Hara's names (``conv1``, ``bn1``, ``layerX.Y.convZ``,
    ``layerX.Y.downsample.0/1``, ``fc``), so only the DataParallel prefix is dropped.
    """
    return strip_prefix(state, "module.")


def convert_hara2020(state: StateDict) -> StateDict:
    """3D-ResNets-PyTorch 2020 keys → snl_video r3d keys (plain; ``module.`` stripped defensively)."""
    return strip_prefix(state, "module.")


def convert_torchvision_2d(state: StateDict) -> StateDict:
    """torchvision ImageNet ResNet keys → snl_video r3d keys: the same names (Hara kept them).

    The kernels stay 2-D here; :func:`snl_video.weights.inflate.inflate_state_dict` makes them 3-D
    against the target model's shapes.
    """
    return dict(state)


def convert_generic(state: StateDict) -> StateDict:
    """A generic state dict (e.g. one snl_video saved itself) is taken as already in the model's names."""
    return dict(state)


CONVERTERS: dict[str, Converter] = {
    "hara2017": convert_hara2017,
    "hara2020": convert_hara2020,
    "torchvision_2d": convert_torchvision_2d,
    "generic": convert_generic,
}


def register_converter(fmt: str, converter: Converter, *, overwrite: bool = False) -> None:
    """Register the pure ``state -> state`` key converter for format ``fmt``.

    The models layer adds converters for the formats whose key names differ from its own
    (pytorchvideo, torchvision, mmaction2, SlowFast, Caffe2); registering a name twice is an
    error unless ``overwrite``.
    """
    if fmt not in KNOWN_FORMATS:
        raise WeightsError(f"unknown checkpoint format {fmt!r}; known formats: {', '.join(KNOWN_FORMATS)}")
    if fmt in CONVERTERS and not overwrite:
        raise WeightsError(f"a converter for format {fmt!r} is already registered; pass overwrite=True to replace it")
    CONVERTERS[fmt] = converter


def convert_state(detected: DetectedCheckpoint) -> StateDict:
    """Apply the registered converter of ``detected.format`` (error listing those available)."""
    converter = CONVERTERS.get(detected.format)
    if converter is None:
        raise WeightsError(
            f"no key converter is registered for {detected.format!r} checkpoints ({detected.source}); "
            f"available: {', '.join(sorted(CONVERTERS)) or 'none'}"
        )
    return converter(dict(detected.state_dict))

