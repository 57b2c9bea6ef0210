"""Parameters and multiply-adds (MACs, the papers' "FLOPs") of a model on one clip.

MACs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts
``2 × MACs`` for every convolution and matrix product (``mm``, ``addmm``, ``bmm``, …) and
nothing for element-wise ops, norms and pooling; we report its count ÷ 2.

Two conventions are reported, because the paper's Table 7 uses the older one:

* ``macs`` — the counter's: convs + ``fc`` + every matrix product, including the
  non-local blocks' affinity products (``θᵀφ`` and ``A Z``: ``2·N²·C_s`` for a dense
  affinity, ``~4·N·C_s²`` for the linear SNL).
* ``macs_table7`` — the convention that reproduces the paper (THOP's, in eval mode):
  convs, ``fc`` and the non-local blocks' 1×1×1 projections (computed as ``mm``) as
  above, plus 2 operations per BatchNorm/GroupNorm output element (normalise, then
  scale-and-shift), and *no* affinity products (a module-hook counter never sees the
  ``torch.bmm`` calls that build and apply ``A``), and no linear solves. For ``r3d50`` at 16×112×112 and 400 classes this is
  10.069 G (convs + fc) + 2 × 16.96 M (BN elements) = 10.103 G ≈ 10.10 G; a res4
  SNL adds 0.257 G of 1×1×1 convs, an NL 0.206 G (affinity products, 0.010 G, left out).
  For the transform-domain blocks (``srb``, ``bat``) the same module-hook view keeps
  their convs (all their learned maps are convs) and their norms, and leaves out their
  functional matrix products (BAT's ``P X Q`` / temporal products, SRB-LO's ``P X Q``).

FFTs (SRB, FFC) are counted by neither convention, as in the papers; ``macs_fft`` reports
them on a separate line, estimated as ``2.5·n·log₂n`` MACs per complex ``n``-point
transform (the radix-2 ``5·n·log₂n`` flops ÷ 2) and half that per real-input or
real-output transform, ``n`` the product of the transformed sizes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

# Ops that only the non-local affinities use (θᵀφ, A·Z, the factorised products).
_AFFINITY_OPS = frozenset({"bmm", "baddbmm"})
# Linear solves of the rational filters (Cayley, ARMA): counted by `_solve_flop` below and
# reported on their own line, outside both the affinity products and the Table 7 count.
_SOLVE_OPS = frozenset({"_linalg_solve_ex"})


def _solve_flop(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs (2 × MACs) of ``solve(A, B)``: LU ``n³/3`` MACs + two triangular solves ``n²·k``, per matrix."""
    n = a_shape[-1]
    k = b_shape[-1] if len(b_shape) == len(a_shape) else 1
    batch = 1
    for d in b_shape[:-2] if len(b_shape) == len(a_shape) else b_shape[:-1]:
        batch *= d
    return 2 * batch * (n**3 // 3 + n * n * k)


_FFT_OPS = frozenset({"_fft_r2c", "_fft_c2r", "_fft_c2c"})


def _fft_flops(shape: Sequence[int], dim: Sequence[int], *, real: bool) -> int:
    """Flops (2 × MACs) of FFTs over ``dim`` of a tensor of ``shape`` (see module doc)."""
    import math

    n = math.prod(shape[d] for d in dim)
    batch = math.prod(shape) // max(n, 1)
    flops = 5.0 * n * math.log2(n) * batch if n > 1 else 0.0
    return int(flops / 2 if real else flops)


def _fft_mapping() -> dict[Any, Any]:
    aten = torch.ops.aten

    def r2c(x_shape, dim, *args, out_shape=None, **kwargs):
        return _fft_flops(x_shape, dim, real=True)

    def c2r(x_shape, dim, *args, out_shape=None, **kwargs):
        return _fft_flops(out_shape, dim, real=True)

    def c2c(x_shape, dim, *args, out_shape=None, **kwargs):
        return _fft_flops(x_shape, dim, real=False)

    return {aten._fft_r2c: r2c, aten._fft_c2r: c2r, aten._fft_c2c: c2c}

__all__ = ["ModelProfile", "count_macs", "profile_model"]


@dataclass
class ModelProfile:
    """What :func:`profile_model` measured (counts are for one clip of ``input_shape``)."""

    params: int
    macs: int
    macs_table7: int
    params_nonlocal: int
    macs_nonlocal: int
    macs_nonlocal_table7: int
    macs_by_op: dict[str, int]
    norm_elements: int
    input_shape: list[int]
    nonlocal_keys: list[str] = field(default_factory=list)
    #: FFTs (SRB, FFC), not in ``macs`` nor ``macs_table7``; estimate, see the module doc.
    macs_fft: int = 0
    macs_solves: int = 0
    macs_nonlocal_solves: int = 0

    @property
    def params_backbone(self) -> int:
        return self.params - self.params_nonlocal

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params_backbone": self.params_backbone}


def count_macs(model: nn.Module, inputs: torch.Tensor) -> tuple[int, dict[str, dict[str, int]]]:
    """MACs of ``model(inputs)`` (no grad) and per-module, per-op MACs, by FlopCounterMode.

    The per-module dict is keyed by the counter's module names (``"<RootClass>.<path>"``,
    plus ``"Global"``); each module's counts include its children's. FFTs are listed there
    (``_fft_r2c``, ``_fft_c2r``, ``_fft_c2c``) but not in the returned total.
    """
    counter = FlopCounterMode(
        display=False, custom_mapping={**_fft_mapping(), torch.ops.aten._linalg_solve_ex: _solve_flop}
    )
    with counter, torch.no_grad():
        model(inputs)
    per_module = {
        name: {str(op).split(".")[1] if str(op).startswith("aten.") else str(op): int(n) // 2 for op, n in ops.items()}
        for name, ops in counter.get_flop_counts().items()
    }
    fft = sum(v for op, v in per_module.get("Global", {}).items() if op in _FFT_OPS)
    return int(counter.get_total_flops()) // 2 - fft, per_module


def _record_norm_outputs(model: nn.Module, per_module: dict[str, int]) -> list[Any]:
    """Hooks adding the output elements of every BatchNorm/GroupNorm to ``per_module``."""
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o, name=name: per_module.__setitem__(name, per_module.get(name, 0) + o.numel())
                )
            )
    return handles


def profile_model(
    model: nn.Module, *, input_shape: Sequence[int], device: str | torch.device = "cpu"
) -> ModelProfile:
    """Count parameters and MACs of ``model`` on one zero clip of ``input_shape`` (B, C, T, H, W).

    The model is put in eval mode (BN uses running statistics; dropout off). Non-local
    blocks are those in ``model.nonlocal_blocks`` (if any); their MACs come from the
    counter's per-module breakdown.
    """
    if len(input_shape) != 5:
        raise InvalidValueError(f"input_shape must be (B, C, T, H, W), got {tuple(input_shape)}")
    was_training = model.training
    model.eval()
    inputs = torch.zeros(*input_shape, device=device)
    norm_per_module: dict[str, int] = {}
    handles = _record_norm_outputs(model, norm_per_module)
    try:
        macs, per_module = count_macs(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    norm_total = sum(norm_per_module.values())
    root = type(model).__name__
    found = getattr(model, "nonlocal_blocks", None)
    nonlocal_blocks = found if isinstance(found, nn.ModuleDict) else nn.ModuleDict()
    keys = list(nonlocal_blocks.keys())
    from ..nonlocal_blocks import NonLocalBlock

    macs_nl = macs_nl_conv = norm_nl = transform_products = macs_nl_solves = 0
    for key in keys:
        ops = {op: v for op, v in per_module.get(f"{root}.nonlocal_blocks.{key}", {}).items() if op not in _FFT_OPS}
        macs_nl += sum(ops.values())
        macs_nl_solves += sum(v for op, v in ops.items() if op in _SOLVE_OPS)
        if isinstance(nonlocal_blocks[key], NonLocalBlock):
            macs_nl_conv += sum(v for op, v in ops.items() if op not in _AFFINITY_OPS and op not in _SOLVE_OPS)
        else:  # srb / bat: only their convs (their P X Q products are functional)
            macs_nl_conv += ops.get("convolution", 0)
            transform_products += sum(v for op, v in ops.items() if op not in _AFFINITY_OPS and op != "convolution")
        norm_nl += sum(v for k, v in norm_per_module.items() if k.startswith(f"nonlocal_blocks.{key}."))
    by_op = {op: v for op, v in per_module.get("Global", {}).items() if op not in _FFT_OPS}
    macs_fft = sum(v for op, v in per_module.get("Global", {}).items() if op in _FFT_OPS)
    # Table 7 convention: every conv / linear product (the non-local blocks compute their
    # 1×1×1 projections as matrix products, `mm`), 2 ops per norm output element, and no
    # batched affinity products (`bmm`), which a module-hook counter never sees.
    solves = sum(v for op, v in by_op.items() if op in _SOLVE_OPS)
    conv_linear = macs - solves - sum(v for op, v in by_op.items() if op in _AFFINITY_OPS) - transform_products
    params_nl = sum(p.numel() for p in nonlocal_blocks.parameters()) if keys else 0
    return ModelProfile(
        params=sum(p.numel() for p in model.parameters()),
        macs=macs,
        macs_table7=conv_linear + 2 * norm_total,
        params_nonlocal=params_nl,
        macs_nonlocal=macs_nl,
        macs_nonlocal_table7=macs_nl_conv + 2 * norm_nl,
        macs_by_op=dict(by_op),
        norm_elements=norm_total,
        macs_solves=solves,
        macs_nonlocal_solves=macs_nl_solves,
        input_shape=list(input_shape),
        nonlocal_keys=keys,
        macs_fft=macs_fft,
    )

