"""The model registry: ``build_model(name, ...)`` and ``list_models(pattern)``.

Each entry is a function returning a :class:`~.resnet3d.ResNet3DSpec` (pure data); its
keyword arguments are the model's options (e.g. ``conv1_t_size`` for Hara's ResNets,
``dropout`` for pytorchvideo's). Registering a name twice is an error.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from . import architectures as arch
from .placement import NonLocalSpec, insert_nonlocal_blocks
from .resnet3d import ResNet3D, ResNet3DSpec

logger = logging.getLogger(__name__)

__all__ = ["ModelEntry", "register_model", "list_models", "model_entry", "build_model", "load_backbone_weights"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered backbone: its spec function and where its architecture comes from."""

    name: str
    make_spec: Callable[..., ResNet3DSpec]
    family: str
    reference: str

    def options(self) -> dict[str, Any]:
        """The model's options with their defaults."""
        return {
            n: p.default
            for n, p in inspect.signature(self.make_spec).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: str, reference: str) -> Callable[[Callable[..., ResNet3DSpec]], Callable[..., ResNet3DSpec]]:
    """Decorator registering a spec function under ``name`` (a duplicate name is an error)."""

    def decorator(make_spec: Callable[..., ResNet3DSpec]) -> Callable[..., ResNet3DSpec]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].make_spec.__qualname__})")
        _REGISTRY[name] = ModelEntry(name, make_spec, family, reference)
        return make_spec

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern``, in registration order."""
    return [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name is an error listing the valid ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build_model(
    name: str,
    *,
    num_classes: int,
    nonlocal_blocks: NonLocalSpec | None = None,
    pretrained: str | Path | Mapping[str, Tensor] | None = None,
    **kw: Any,
) -> ResNet3D:
    """Build backbone ``name`` with a ``num_classes`` head and optional non-local blocks.

    Args:
        name: one of :func:`list_models`.
        num_classes: size of the classification head.
        nonlocal_blocks: ``None`` (no blocks), a kind name (the paper's placement: one
            block before the last residual block of res4, ``C_s = C/2``) or a placement
            spec (see :mod:`snl_video.models.placement`).
        pretrained: backbone weights in this toolkit's key format: a state dict or a
            path to one (``torch.save``); loaded by :func:`load_backbone_weights` (the
            head is dropped when the class count differs). Named checkpoints and foreign
            formats are converted by ``snl_video.weights``.
        **kw: the model's options (see ``model_entry(name).options()``).
    """
    entry = model_entry(name)
    valid = entry.options()
    unknown = sorted(set(kw) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for model {name!r}; valid options: "
            + (", ".join(f"{k}={v!r}" for k, v in valid.items()) or "none")
        )
    model = ResNet3D(entry.make_spec(**kw), num_classes=num_classes)
    if nonlocal_blocks is not None:
        insert_nonlocal_blocks(model, nonlocal_blocks)
    if pretrained is not None:
        # After placement, so a checkpoint that has the same blocks loads them too.
        load_backbone_weights(model, pretrained)
    return model


def load_backbone_weights(
    model: ResNet3D, source: str | Path | Mapping[str, Tensor], *, allow_missing_head: bool = True
) -> dict[str, list[str]]:
    """Load a backbone state dict (toolkit key format) into ``model``.

    Keys of ``model.nonlocal_blocks`` may be missing (new blocks start as the identity;
    blocks present in the weights are loaded);
    the head (``fc``) is skipped when its shape differs (fine-tuning to a new class
    count) if ``allow_missing_head``. Any other missing or unexpected key is an error.
    Returns and logs the report ``{"missing": [...], "skipped_head": [...]}``.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        state = dict(source)
    own = model.state_dict()
    skipped_head = []
    for key in ("fc.weight", "fc.bias"):
        if key in state and key in own and state[key].shape != own[key].shape:
            if not allow_missing_head:
                raise ValueError(f"{key} has shape {tuple(state[key].shape)}, the model {tuple(own[key].shape)}")
            skipped_head.append(key)
    state = {k: v for k, v in state.items() if k not in skipped_head}
    unexpected = sorted(set(state) - set(own))
    extra_blocks = sorted({k.split(".")[1] for k in unexpected if k.startswith("nonlocal_blocks.")})
    if extra_blocks:
        raise ValueError(
            f"the weights hold non-local blocks {extra_blocks} that the model does not have "
            f"(it has {list(model.nonlocal_blocks) or 'none'}): build the model with the same nonlocal_blocks, "
            "or load only the backbone (ResNet3D.backbone_state_dict())"
        )
    missing = sorted(set(own) - set(state))
    bad_missing = [k for k in missing if not k.startswith("nonlocal_blocks.") and k not in skipped_head]
    if unexpected or bad_missing:
        raise ValueError(
            f"pretrained weights do not match the model: {len(unexpected)} unexpected key(s) "
            f"{unexpected[:5]}, {len(bad_missing)} missing key(s) {bad_missing[:5]}; convert foreign checkpoints "
            "with snl_video.weights first"
        )
    model.load_state_dict(state, strict=False)
    report = {"missing": missing, "skipped_head": skipped_head}
    logger.info(
        "loaded %d tensors; new (identity-initialised) non-local tensors: %d; head skipped: %s",
        len(state),
        sum(k.startswith("nonlocal_blocks.") for k in missing),
        skipped_head or "no",
    )
    return report


# --------------------------------------------------------------------------------------
# The registered backbones.
# --------------------------------------------------------------------------------------

_HARA = "Hara et al., CVPR 2018 (kenshohara/3D-ResNets-PyTorch, models/resnet.py)"


def _register_hara(depth: int) -> None:
    def make_spec(
        *, conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False, widen_factor: float = 1.0
    ) -> ResNet3DSpec:
        return arch.hara_resnet(
            depth,
            conv1_t_size=conv1_t_size,
            conv1_t_stride=conv1_t_stride,
            no_max_pool=no_max_pool,
            widen_factor=widen_factor,
        )

    make_spec.__qualname__ = f"r3d{depth}"
    make_spec.__doc__ = f"Hara's 3D ResNet-{depth}."
    register_model(f"r3d{depth}", family="hara", reference=_HARA)(make_spec)


def _register_pytorchvideo(variant: str) -> None:
    def make_spec(*, dropout: float = 0.5) -> ResNet3DSpec:
        return arch.pytorchvideo_resnet50(variant, dropout=dropout)

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


for _depth in arch.HARA_DEPTHS:
    _register_hara(_depth)
for _variant in ("i3d", "slow", "c2d"):
    _register_pytorchvideo(_variant)
for _variant in ("r3d", "mc3", "r2plus1d"):
    _register_torchvision(_variant)
