"""Where non-local blocks go in a :class:`~.resnet3d.ResNet3D`.

A *position* ``p`` in stage ``layerK`` means "after residual block ``p`` of that stage"
(0-based, so ``0 ≤ p ≤ depth - 1``; ``depth - 1`` is the end of the stage). The block
sees that residual block's output, ``(B, C_stage, T, H, W)``.

* The paper's default (``nonlocal_blocks="snl"``, or any kind name): one block in res4
  (``layer3``) right before its last residual block, i.e. position ``depth - 2`` (4 for
  the 6-block res4 of a ResNet-50; a one-block stage gets position 0), ``C_s = C / 2``.
* A spec mapping names the kind, its options and the positions, e.g. the NL paper's
  5-block layout (res3 after blocks 1, 3; res4 after blocks 1, 3, 5)::

      {"kind": "nl", "options": {}, "positions": {"layer2": [1, 3], "layer3": [1, 3, 5]}}

  Keys: ``kind`` (required), ``options`` (passed to
  :func:`~snl_video.nonlocal_blocks.build_nonlocal`), ``positions`` (default: the
  paper's), ``inter_channels`` (``C_s``; default ``C / 2`` of each stage). Stages may be
  named ``layer1..layer4`` or ``res2..res5``; in a two-pathway model (SlowFast) they are
  qualified by the pathway, ``slow.layer3`` / ``fast.res4`` (a bare ``layer3`` is an
  error there, naming both), and the paper's default goes to the slow pathway's res4. ``input_size`` (``[T, H, W]``, the model's
  nominal clip size) gives each placed block the map size of its position: blocks bound
  to one size (``srb`` with ``transform="lo"`` or ``spectrum_relu``) are built for it, and
  ``bat`` checks its ``s``/``ts`` against it, so errors name the position. It is needed
  (an error says so) only by the size-bound kinds; ``build_model_from_config`` passes the
  config's ``data.num_frames`` × ``data.crop_size``².

Blocks live in the model's ``nonlocal_blocks`` ModuleDict (key ``layer3_after_4``,
``slow_layer3_after_4``), not inside the stages, so no backbone key changes.

Any model works here that, like :class:`~.resnet3d.ResNet3D`, ``SlowFast3D`` and ``X3D``,
has ``stage_depths()`` / ``stage_channels()`` keyed by stage name, the stage's residual
blocks at ``model.get_submodule(stage)``, a ``nonlocal_blocks`` ModuleDict that its forward
applies, and a ``spec`` it can be rebuilt from (``type(model)(model.spec, num_classes=1)``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, Union, cast

from ..errors import InvalidValueError
from ..nonlocal_blocks import build_nonlocal, list_nonlocal_kinds
from .resnet3d import nonlocal_key

if TYPE_CHECKING:
    from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = [
    "NonLocalPlacement",
    "NonLocalSpec",
    "default_positions",
    "resolve_placement",
    "insert_nonlocal_blocks",
    "stage_map_sizes",
    "RegistryModel",
    "explain_nonlocal_mismatch",
    "mmaction2_nonlocal_spec",
]


class RegistryModel(Protocol):
    """What every model class of the registry (:data:`~.registry.MODEL_CLASSES`) has besides
    being an ``nn.Module``: its spec, its stages (none for torchvision's baselines), its
    non-local block slots and the pooled features its head classifies. For the type checker:
    a model built by name is typed ``nn.Module``, and code that needs these casts to it."""

    spec: Any
    nonlocal_blocks: nn.ModuleDict

    def stage_depths(self) -> dict[str, int]: ...

    def stage_channels(self) -> dict[str, int]: ...

    def forward_features(self, x: Tensor) -> Tensor: ...


STAGE_ALIASES: dict[str, str] = {"res2": "layer1", "res3": "layer2", "res4": "layer3", "res5": "layer4"}
_SPEC_KEYS = ("kind", "options", "positions", "inter_channels", "input_size")


@dataclass(frozen=True)
class NonLocalPlacement:
    """A validated placement: one kind (with options) at ``positions`` per stage."""

    kind: str
    positions: dict[str, tuple[int, ...]]
    options: dict[str, Any] = field(default_factory=dict)
    inter_channels: int | None = None
    input_size: tuple[int, int, int] | None = None

    def keys(self) -> list[str]:
        """The ``nonlocal_blocks`` keys this placement creates."""
        return [nonlocal_key(stage, p) for stage, ps in self.positions.items() for p in ps]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "options": dict(self.options),
            "positions": {k: list(v) for k, v in self.positions.items()},
            "inter_channels": self.inter_channels,
            "input_size": None if self.input_size is None else list(self.input_size),
        }


NonLocalSpec = Union[str, Mapping[str, Any], NonLocalPlacement]


def default_positions(stage_depths: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """The paper's placement: res4 (``layer3``), right before its last residual block; in a
    two-pathway model the first pathway's (SlowFast: ``slow.layer3``, as the SlowFast zoo's
    non-local rows, which place blocks in the slow pathway)."""
    stage = "layer3" if "layer3" in stage_depths else next((s for s in stage_depths if s.endswith(".layer3")), None)
    if stage is None:
        raise InvalidValueError(f"this model has no res4 (layer3) stage for the default placement; stages: {', '.join(stage_depths)}")
    return {stage: (max(stage_depths[stage] - 2, 0),)}


def _stage_name(name: Any, stages: Mapping[str, int]) -> str:
    """``name`` (``layer3``, ``res4``, ``slow.res4``) as one of the model's ``stages``."""
    resolved = name
    if isinstance(name, str):
        prefix, _, last = name.rpartition(".")
        resolved = (f"{prefix}." if prefix else "") + STAGE_ALIASES.get(last, last)
    if resolved in stages:
        return resolved
    aliases = f"(or {', '.join(f'{a}={s}' for a, s in STAGE_ALIASES.items())})"
    qualified = [s for s in stages if isinstance(resolved, str) and s.endswith(f".{resolved}")]
    if qualified:
        raise InvalidValueError(
            f"stage {name!r} is ambiguous in non-local positions: this model has one per pathway; "
            f"name the pathway: {' or '.join(repr(s) for s in qualified)}"
        )
    raise InvalidValueError(f"unknown stage {name!r} in non-local positions; valid stages: {', '.join(stages)} {aliases}")


def _check_positions(raw: Any, stage_depths: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidValueError(
            f"non-local positions must be a non-empty mapping stage -> list of block indices, e.g. "
            f"{{'layer3': [4]}}; got {raw!r} (to place no blocks, pass nonlocal_blocks=None)"
        )
    positions: dict[str, tuple[int, ...]] = {}
    for stage_raw, indices in raw.items():
        stage = _stage_name(stage_raw, stage_depths)
        if stage in positions:
            raise InvalidValueError(f"stage {stage} is given twice in non-local positions (as {stage_raw!r} and an alias)")
        depth = stage_depths[stage]
        if isinstance(indices, int) and not isinstance(indices, bool):
            indices = [indices]
        if not isinstance(indices, (list, tuple)) or not indices:
            raise InvalidValueError(f"positions for {stage} must be a non-empty list of block indices, got {indices!r}")
        for p in indices:
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < depth:
                raise InvalidValueError(
                    f"non-local position {p!r} is out of range for {stage}, which has {depth} residual "
                    f"block(s): valid positions are 0..{depth - 1} (position p = after block p)"
                )
        if len(set(indices)) != len(indices):
            raise InvalidValueError(f"duplicate non-local positions for {stage}: {list(indices)}")
        positions[stage] = tuple(sorted(indices))
    return positions


def resolve_placement(spec: NonLocalSpec | None, *, stage_depths: Mapping[str, int]) -> NonLocalPlacement | None:
    """Validate ``spec`` against a backbone's stage depths; ``None`` means no blocks."""
    if spec is None:
        return None
    if isinstance(spec, NonLocalPlacement):
        spec = spec.to_dict()
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, Mapping):
        raise InvalidValueError(
            f"nonlocal_blocks must be a kind name ({', '.join(list_nonlocal_kinds())}), a mapping with keys "
            f"{list(_SPEC_KEYS)}, or None; got {type(spec).__name__} {spec!r}"
        )
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise InvalidValueError(f"unknown key(s) {unknown} in the non-local spec; valid keys: {list(_SPEC_KEYS)}")
    kind = spec.get("kind")
    if kind not in list_nonlocal_kinds():
        raise InvalidValueError(f"unknown non-local kind {kind!r}; valid kinds: {', '.join(list_nonlocal_kinds())}")
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        raise InvalidValueError(f"non-local options must be a mapping, got {options!r}")
    positions_raw = spec.get("positions")
    positions = default_positions(stage_depths) if positions_raw is None else _check_positions(positions_raw, stage_depths)
    inter_channels = spec.get("inter_channels")
    if inter_channels is not None and (isinstance(inter_channels, bool) or not isinstance(inter_channels, int) or inter_channels <= 0):
        raise InvalidValueError(f"inter_channels must be a positive int or None (C/2), got {inter_channels!r}")
    input_size = spec.get("input_size")
    if input_size is not None:
        if (
            not isinstance(input_size, (list, tuple))
            or len(input_size) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in input_size)
        ):
            raise InvalidValueError(f"input_size must be the clip size [T, H, W] (positive ints) or None, got {input_size!r}")
        input_size = tuple(input_size)
    return NonLocalPlacement(
        kind=kind, positions=positions, options=dict(options), inter_channels=inter_channels, input_size=input_size
    )


def stage_map_sizes(model: "nn.Module", input_size: tuple[int, int, int]) -> dict[str, tuple[int, int, int]]:
    """``(T, H, W)`` of the output of every residual block (key ``layerK_after_i``, see
    :func:`~.resnet3d.nonlocal_key`) for a
    clip of ``input_size``, from a shape-only run of the backbone on the meta device."""
    import torch

    host = cast(RegistryModel, model)  # a backbone with stages (the registry's model classes)
    with torch.device("meta"):
        probe = type(model)(host.spec, num_classes=1)
    probe.eval()  # shapes only: training-mode BatchNorm would reject a 1x1x1 map at batch 1
    sizes: dict[str, tuple[int, int, int]] = {}
    handles = []
    for stage in host.stage_depths():
        for index, block in enumerate(cast("nn.Sequential", probe.get_submodule(stage))):  # a stage: its blocks
            key = nonlocal_key(stage, index)
            handles.append(
                block.register_forward_hook(  # FFC blocks return (local, global) pairs of one map size
                    lambda m, i, o, key=key: sizes.__setitem__(key, tuple((o[0] if isinstance(o, tuple) else o).shape[2:]))
                )
            )
    try:
        with torch.no_grad():
            clip = torch.empty(1, host.spec.in_channels, *input_size, device="meta")
            cast(RegistryModel, probe).forward_features(clip)
    finally:
        for handle in handles:
            handle.remove()
    return sizes


def insert_nonlocal_blocks(model: "nn.Module", spec: NonLocalSpec) -> NonLocalPlacement:
    """Build the blocks of ``spec`` into ``model.nonlocal_blocks``; returns the placement.

    Every block starts as the identity, so the model's function is unchanged. Placing a
    block where one already is is an error, and so is placing any in a model that says why it
    refuses them (``model.nonlocal_refusal``: torchvision's transformer baselines).
    """
    refusal = getattr(model, "nonlocal_refusal", None)
    if refusal is not None:
        raise InvalidValueError(refusal)
    host = cast(RegistryModel, model)  # a model that does not refuse blocks has stages (the registry's classes)
    placement = resolve_placement(spec, stage_depths=host.stage_depths())
    assert placement is not None
    channels = host.stage_channels()
    sizes: dict[str, tuple[int, int, int]] | None = None
    for stage, indices in placement.positions.items():
        for index in indices:
            key = nonlocal_key(stage, index)
            if key in host.nonlocal_blocks:
                raise InvalidValueError(f"a non-local block is already placed at {key}")
            block = build_nonlocal(
                placement.kind, channels[stage], inter_channels=placement.inter_channels, **placement.options
            )
            # Transform-domain kinds (srb, bat) learn the map size of their position.
            bind = getattr(block, "bind_map_size", None)
            if bind is not None and placement.input_size is not None:
                if sizes is None:
                    sizes = stage_map_sizes(model, placement.input_size)
                try:
                    bind(sizes[key])
                except ValueError as exc:
                    t, h, w = sizes[key]
                    raise InvalidValueError(
                        f"{placement.kind} at {key} (map {t}x{h}x{w} for a {'x'.join(map(str, placement.input_size))} "
                        f"clip): {exc}"
                    ) from None
            elif getattr(block, "requires_map_size", False) and getattr(block, "spatial_size", None) is None:
                raise InvalidValueError(
                    f"{placement.kind} with options {placement.options} binds each block to the map size of its "
                    f"position: give the non-local spec an input_size [T, H, W] (the clip size) or "
                    f"options.spatial_size [H, W]"
                )
            host.nonlocal_blocks[key] = block
    logger.debug("placed %s blocks at %s", placement.kind, placement.keys())
    return placement


def explain_nonlocal_mismatch(
    state: Mapping[str, Any], *, model_keys: set[str], model_blocks: Sequence[str], ignored: set[str], fmt: str
) -> str | None:
    """Why a checkpoint's non-local tensors cannot go into the model (``None`` if they can).

    * mmaction2's ``non_local_block`` tensors left after conversion (``NonLocal3d`` in its
      ``gaussian`` or ``concatenation`` mode) have no counterpart, so they are not transferable.
    * snl_video's own ``nonlocal_blocks.<name>`` keys (mmaction2's and BAT's converted ones
      included) must match blocks the model has.

    Keys in ``ignored`` (the user's ``pretrained.ignore``) are left alone.
    """
    foreign = sorted(k for k in state if "non_local_block." in k and k not in ignored)
    if foreign:
        return (
            f"this {fmt} checkpoint holds {len(foreign)} non-local tensors (e.g. {foreign[:3]}) of a NonLocal3d mode "
            "snl_video's blocks do not represent (only embedded_gaussian and dot_product convert), so they are not "
            "transferable. Load the backbone alone and train fresh blocks: set pretrained.ignore=['*non_local_block*'] "
            "(and nonlocal_blocks: to place snl_video's own; Python: pretrained_ignore=('*non_local_block*',))."
        )
    extra = sorted(
        {k.split(".")[1] for k in state if k.startswith("nonlocal_blocks.") and k not in model_keys and k not in ignored}
    )
    if not extra:
        return None
    hint = ""
    if fmt == "mmaction2":
        hint = (" (an mmaction2 I3D-NL file: build with nonlocal_blocks=snl_video.models.mmaction2_nonlocal_spec("
                "mode) — mode 'embedded_gaussian' or 'dot_product', as its config's non_local_cfg — to load its "
                "blocks too)")
    return (
        f"the weights hold non-local blocks {extra} that the model does not have (it has "
        f"{list(model_blocks) or 'none'}): build the model with the same nonlocal_blocks{hint}, or set "
        "pretrained.ignore=['nonlocal_blocks.*'] to load only the backbone (Python: "
        "pretrained_ignore=('nonlocal_blocks.*',))"
    )


def mmaction2_nonlocal_spec(
    mode: str = "embedded_gaussian",
    *,
    use_scale: bool = False,
    sub_sample: bool = True,
    positions: dict[str, list[int]] | None = None,
) -> dict:
    """The ``nonlocal_blocks`` spec that reproduces mmaction2's I3D-R50-NL blocks exactly.

    ``mode`` and ``use_scale`` / ``sub_sample`` are those of the checkpoint's
    ``non_local_cfg`` (the published I3D-NL configs: ``sub_sample=True, use_scale=False``;
    the weights do not record the mode). ``positions`` default to the published
    ``non_local=((0,0,0), (0,1,0,1), (0,1,0,1,0,1), (0,0,0))``: after blocks 1 and 3 of
    ``layer2`` and 1, 3, 5 of ``layer3``. Use it with ``build_model("i3d_r50", ...,
    nonlocal_blocks=mmaction2_nonlocal_spec(...), pretrained=FILE)``; the key mapping is
    :mod:`snl_video.weights.formats.mmaction2`'s.
    """
    kinds = {"embedded_gaussian": "nl", "dot_product": "nl_dot"}
    if mode not in kinds:
        raise InvalidValueError(f"mode must be one of {list(kinds)} (mmaction2's gaussian and concatenation modes have no "
                         f"snl_video counterpart), got {mode!r}")
    options: dict = {"bias": True, "activation": "none", "subsample": [1, 2, 2] if sub_sample else [1, 1, 1]}
    if mode == "embedded_gaussian":
        options["scale"] = bool(use_scale)
    elif use_scale:
        raise InvalidValueError("use_scale only applies to mmaction2's embedded_gaussian mode")
    return {
        "kind": kinds[mode],
        "options": options,
        "positions": positions or {"layer2": [1, 3], "layer3": [1, 3, 5]},
    }
