"""Affinity builders: modules that turn the embeddings ``θ``, ``φ`` into a graph operator ``A``.

Each named block of the paper's Table 1 differs first in how it builds ``A``; the builders
here are those choices; they are modules because some own parameters (DNL's unary conv,
under the block's ``affinity.`` state-dict keys). The operators they return,
dense or factorised, live in :mod:`.affinity`; :func:`resolve_impl` picks between the two
equal-valued paths for ``impl="auto"``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .affinity import (
    CrissCrossAffinity,
    DenseAffinity,
    GraphOperator,
    LowRankAffinity,
    SumAffinity,
    TaylorChannelAffinity,
    softmax_affinity,
    spectral_affinity,
)
from ..errors import InvalidValueError

__all__ = [
    "AUTO_LINEAR_NODES_PER_CHANNEL",
    "AffinityBuilder",
    "CompactGeneralizedAffinity",
    "CrissCrossAffinityBuilder",
    "DisentangledAffinity",
    "EmbeddedGaussianAffinity",
    "FactorizedAffinity",
    "Impl",
    "resolve_impl",
]

Impl = Literal["auto", "dense", "linear"]

# `impl="auto"` uses the linear (factorised) affinity once N >= this × C_s. The dense
# path costs ~2·N²·C_s multiply-adds plus several memory-bound passes over N² entries,
# the linear one ~4·N·C_s²; on CPU (2 cores, forward+backward, C_s = 64..512) the two
# cross between N ≈ 1.5·C_s and N ≈ 3·C_s, and the gap grows linearly in N beyond.
AUTO_LINEAR_NODES_PER_CHANNEL = 2.0


def resolve_impl(impl: Impl, num_nodes: int, inter_channels: int) -> Literal["dense", "linear"]:
    """Pick the affinity implementation for ``impl="auto"`` (the two give equal results)."""
    if impl == "auto":
        return "linear" if num_nodes >= AUTO_LINEAR_NODES_PER_CHANNEL * inter_channels else "dense"
    if impl not in ("dense", "linear"):
        raise InvalidValueError(f"impl must be 'auto', 'dense' or 'linear', got {impl!r}")
    return impl


class AffinityBuilder(nn.Module):
    """Builds the graph operator ``A`` from ``θ``, ``φ`` of shape ``(B, N, C_s)``."""

    def forward(self, theta: Tensor, phi: Tensor, *, x: Tensor, shape: tuple[int, int, int]) -> GraphOperator:
        raise NotImplementedError


class EmbeddedGaussianAffinity(AffinityBuilder):
    """``softmax_j(θ_i·φ_j · s)``; ``s = C_s^-1/2`` if ``scale`` (NL, NS)."""

    def __init__(self, inter_channels: int, *, scale: bool) -> None:
        super().__init__()
        self.scale = scale
        self.factor = inter_channels**-0.5 if scale else 1.0

    def forward(self, theta, phi, *, x, shape):
        return softmax_affinity(theta, phi, scale=self.factor)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class FactorizedAffinity(AffinityBuilder):
    """Low-rank affinities: ``θφᵀ/N`` (dot), ``relu(θ)relu(φ)ᵀ`` (A²), SNL, A² softmax."""

    def __init__(self, inter_channels: int, *, variant: str, impl: Impl) -> None:
        super().__init__()
        self.inter_channels = inter_channels
        self.variant = variant
        self.impl = impl

    def forward(self, theta, phi, *, x, shape):
        impl = resolve_impl(self.impl, theta.shape[1], self.inter_channels)
        if self.variant == "spectral":
            return spectral_affinity(theta, phi, impl=impl)
        if self.variant == "dot":
            op = LowRankAffinity(theta, phi, normalization="count")
        elif self.variant == "relu":
            op = LowRankAffinity(torch.relu(theta), torch.relu(phi))
        elif self.variant == "softmax":
            # A²'s gather (softmax over positions) and distribute (softmax over channels).
            op = LowRankAffinity(torch.softmax(theta, dim=2), torch.softmax(phi, dim=1))
        else:  # pragma: no cover - guarded by the presets
            raise AssertionError(self.variant)
        return DenseAffinity(op.dense()) if impl == "dense" else op

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, impl={self.impl!r}"


class CrissCrossAffinityBuilder(AffinityBuilder):
    def __init__(self, inter_channels: int, *, scale: bool) -> None:
        super().__init__()
        self.scale = scale
        self.factor = inter_channels**-0.5 if scale else 1.0

    def forward(self, theta, phi, *, x, shape):
        return CrissCrossAffinity(theta, phi, shape, scale=self.factor)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class DisentangledAffinity(AffinityBuilder):
    """DNL (Yin et al., ECCV 2020): whitened pairwise softmax + a unary (per-key) term.

    ``A = softmax_j((θ_i - μ_θ)·(φ_j - μ_φ) · s / τ) + 1 uᵀ`` with ``u = softmax_j(w_u x_j)``
    (``μ`` are means over positions, ``w_u`` a 1×1×1 conv ``C → 1``). Every row of each
    term sums to one. The unary conv has no bias: a softmax over positions ignores it.
    """

    def __init__(self, in_channels: int, inter_channels: int, *, scale: bool, temperature: float) -> None:
        super().__init__()
        if temperature <= 0:
            raise InvalidValueError(f"temperature must be > 0, got {temperature}")
        self.unary = nn.Conv3d(in_channels, 1, kernel_size=1, bias=False)
        #: Max-pool window of the keys (the block's ``subsample``): the unary logits are
        #: pooled like φ and g, so ``u`` lives on the same (sub-sampled) key nodes.
        self.key_pool: tuple[int, int, int] = (1, 1, 1)
        self.scale = scale
        self.factor = inter_channels**-0.5 if scale else 1.0
        self.temperature = temperature

    def forward(self, theta, phi, *, x, shape):
        theta = theta - theta.mean(dim=1, keepdim=True)
        phi = phi - phi.mean(dim=1, keepdim=True)
        pairwise = softmax_affinity(theta, phi, scale=self.factor, temperature=self.temperature)
        logits = self.unary(x.to(self.unary.weight.dtype))
        if self.key_pool != (1, 1, 1):
            logits = F.max_pool3d(logits, kernel_size=self.key_pool, stride=self.key_pool)
        unary = torch.softmax(logits.flatten(1).to(theta.dtype), dim=1).unsqueeze(-1)
        ones = torch.ones(theta.shape[0], theta.shape[1], 1, dtype=unary.dtype, device=unary.device)
        return SumAffinity([pairwise, LowRankAffinity(ones, unary)])

    def extra_repr(self) -> str:
        return f"scale={self.scale}, temperature={self.temperature}"


class CompactGeneralizedAffinity(AffinityBuilder):
    def __init__(self, *, groups: int, kernel: Literal["gaussian", "dot"], taylor_order: int, gamma: float,
                 scale: bool) -> None:
        super().__init__()
        self.groups = groups
        self.kernel = kernel
        self.taylor_order = taylor_order
        self.gamma = gamma
        self.scale = scale

    def forward(self, theta, phi, *, x, shape):
        factor = 1.0
        if self.scale:
            # The CGNL code's `use_scale`: divide by sqrt(#nodes in a group).
            factor = (theta.shape[1] * theta.shape[2] // self.groups) ** -0.5
        return TaylorChannelAffinity(
            theta,
            phi,
            groups=self.groups,
            kernel=self.kernel,
            taylor_order=self.taylor_order,
            gamma=self.gamma,
            scale=factor,
        )

    def extra_repr(self) -> str:
        return (
            f"groups={self.groups}, kernel={self.kernel!r}, taylor_order={self.taylor_order}, "
            f"gamma={self.gamma}, scale={self.scale}"
        )
