"""One non-local block class and the named presets of the paper's Table 1.

Every block computes ``y = x + act(norm(Σ_k W_k P_k(A) Z))`` with ``Z = g(x)`` and ``A``
built from ``θ(x)`` and ``φ(x)`` (see :mod:`.affinity` and :mod:`.filters`). The presets
(``nl``, ``nl_dot``, ``ns``, ``a2``, ``cgnl``, ``cc``, ``dnl``, ``snl``) only choose the
affinity builder, the filter terms and the output normalisation; :func:`build_nonlocal`
resolves a kind name and its options into a :class:`NonLocalBlock`.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Literal, Sequence

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
from .filters import Basis, FilterTerm, GraphFilter, PolynomialFilter, chebyshev_terms
from .rational import ArmaFilter, CayleyFilter, CayleyOfficialFilter

logger = logging.getLogger(__name__)

__all__ = [
    "NonLocalBlock",
    "build_nonlocal",
    "list_nonlocal_kinds",
    "nonlocal_options",
    "resolve_impl",
    "register_block_kind",
    "AUTO_LINEAR_NODES_PER_CHANNEL",
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
        raise ValueError(f"impl must be 'auto', 'dense' or 'linear', got {impl!r}")
    return impl


# --------------------------------------------------------------------------------------
# Affinity builders: nn.Modules (some own parameters) that turn embeddings into operators.
# --------------------------------------------------------------------------------------


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
            raise ValueError(f"temperature must be > 0, got {temperature}")
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
    def __init__(self, *, groups: int, kernel: str, taylor_order: int, gamma: float, scale: bool) -> None:
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
            kernel=self.kernel,  # type: ignore[arg-type]
            taylor_order=self.taylor_order,
            gamma=self.gamma,
            scale=factor,
        )

    def extra_repr(self) -> str:
        return (
            f"groups={self.groups}, kernel={self.kernel!r}, taylor_order={self.taylor_order}, "
            f"gamma={self.gamma}, scale={self.scale}"
        )


# --------------------------------------------------------------------------------------
# The block.
# --------------------------------------------------------------------------------------


class _ReLUOpenAtZero(torch.autograd.Function):
    """``relu`` whose backward passes the gradient where the input is exactly 0.

    ``relu'(0)`` is any value in ``[0, 1]``; PyTorch picks 0. Here it is 1, because the
    block's output norm starts at zero (so the block is the identity): with 0, the
    gradient of the zero-initialised norm would be exactly zero forever and the block
    could never leave the identity. The forward value is the ordinary ``relu``.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x >= 0).to(grad.dtype)


def _to_nodes(x: Tensor) -> Tensor:
    """``(B, C, T, H, W)`` → ``(B, N, C)``."""
    return x.flatten(2).transpose(1, 2)


def _from_nodes(z: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """``(B, N, C)`` → ``(B, C, T, H, W)``."""
    return z.transpose(1, 2).reshape(z.shape[0], z.shape[2], *shape)


def _pointwise(conv: nn.Conv3d, nodes: Tensor) -> Tensor:
    """A 1×1×1 conv applied to node features ``(B, N, C_in)`` → ``(B, N, C_out)``.

    The same function as ``conv`` on the map, computed as one matrix product: PyTorch's
    CPU Conv3d falls back to a slow per-frame unfold for 1×1×1 kernels, and the nodes
    layout is what the affinity needs anyway. Grouped convs (CGNL) use the conv itself.
    """
    if conv.groups == 1:
        return F.linear(nodes, conv.weight.flatten(1), conv.bias)
    batch, count, _ = nodes.shape
    mapped = conv(nodes.transpose(1, 2).reshape(batch, -1, count, 1, 1))
    return mapped.flatten(2).transpose(1, 2)


class NonLocalBlock(nn.Module):
    """``y = x + act(norm(Σ_k W_k P_k(A) Z))``: the unified non-local block.

    Submodules: ``theta``, ``phi``, ``g`` (1×1×1 convs ``C → C_s``, biased with ``bias``), one
    1×1×1 conv ``C_s → C`` per distinct weight of the filter (``w1``, ``w2``, …: the
    weight of the ``A^k`` term is ``w{k+1}``), ``affinity`` (the builder of ``A``; DNL's
    owns the unary conv) and the output norm ``bn`` (BatchNorm3d) or ``gn`` (GroupNorm).

    Input ``(B, C, T, H, W)``, or ``(B, C, H, W)`` treated as ``T = 1``; output the same
    shape. The norm starts at zero (``zero_init=True``), so a new block is exactly the
    identity and inserting it into a pretrained network changes nothing at step 0.

    ``subsample=(t, h, w)`` max-pools φ and g (after their convs) with that window and
    stride, as the NL paper (§3.3) and mmaction2's ``NonLocal3d(sub_sample=True)`` (window
    ``(1, 2, 2)``): ``A`` maps the N query positions to the ``N / (t·h·w)`` pooled keys, so
    ``A Z`` costs that much less; a ``Z W`` term (NS) keeps the full-resolution ``g``.
    Only filters of order ≤ 1 can be sub-sampled (``A^2`` needs a square ``A``).

    Build instances with :func:`build_nonlocal`; the constructor is the low-level form.
    """

    def __init__(
        self,
        in_channels: int,
        inter_channels: int,
        *,
        kind: str,
        affinity: AffinityBuilder,
        terms: Sequence[FilterTerm] = (),
        basis: Basis = "monomial",
        graph_filter: Callable[[int], GraphFilter] | None = None,
        norm: Literal["bn", "gn"] = "bn",
        norm_groups: int = 1,
        activation: Literal["relu", "none"] = "relu",
        zero_init: bool = True,
        recurrence: int = 1,
        upcast: bool = True,
        projection_groups: int = 1,
        subsample: Sequence[int] = (1, 1, 1),
        bias: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("inter_channels", inter_channels)
        _check_positive_int("recurrence", recurrence)
        if activation not in ("relu", "none"):
            raise ValueError(f"activation must be 'relu' or 'none', got {activation!r}")
        if norm not in ("bn", "gn"):
            raise ValueError(f"norm must be 'bn' or 'gn', got {norm!r}")
        self.kind = kind
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.terms = tuple(terms)
        self.basis = basis
        self.activation = activation
        self.recurrence = recurrence
        self.upcast = upcast
        self.options = dict(options or {})
        self.subsample = _check_subsample(subsample)
        if self.subsample != (1, 1, 1) and (graph_filter is not None or not self.terms
                                            or max(t.power for t in self.terms) > 1):
            raise ValueError(f"{kind}: subsample={list(self.subsample)} needs a polynomial filter of order <= 1 "
                             "(A maps positions to fewer pooled keys, so A^2 and rational filters are undefined)")

        self.theta = nn.Conv3d(in_channels, inter_channels, kernel_size=1, bias=bias)
        self.phi = nn.Conv3d(in_channels, inter_channels, kernel_size=1, bias=bias)
        self.g = nn.Conv3d(in_channels, inter_channels, kernel_size=1, bias=bias)
        self.affinity = affinity
        if isinstance(affinity, DisentangledAffinity):
            affinity.key_pool = self.subsample
        # The filter: polynomial terms (Table 1) unless a rational filter factory is given
        # (called with C_s; it may own parameters, e.g. Cayley's zoom, under `filter.`).
        self.filter = graph_filter(inter_channels) if graph_filter is not None else PolynomialFilter(self.terms, basis)
        self.weight_names = tuple(self.filter.weight_names)
        for name in self.weight_names:
            self.add_module(
                name,
                nn.Conv3d(inter_channels, in_channels, kernel_size=1, bias=False, groups=projection_groups),
            )
        if norm == "bn":
            self.bn = nn.BatchNorm3d(in_channels)
            self._norm_name = "bn"
        else:
            if in_channels % norm_groups:
                raise ValueError(f"GroupNorm: {in_channels} channels are not divisible by {norm_groups} groups")
            self.gn = nn.GroupNorm(norm_groups, in_channels)
            self._norm_name = "gn"
        self.reset_parameters(zero_init=zero_init)

    @property
    def out_norm(self) -> nn.Module:
        """The output normalisation (``bn`` or ``gn``), zero-initialised."""
        return getattr(self, self._norm_name)

    def reset_parameters(self, *, zero_init: bool = True) -> None:
        """Kaiming (fan-out) 1×1×1 convs as in the official code; norm at 0 or 1."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.constant_(self.out_norm.weight, 0.0 if zero_init else 1.0)
        nn.init.zeros_(self.out_norm.bias)
        if zero_init:
            # The block's contract: it starts as the identity.
            assert not self.out_norm.weight.any() and not self.out_norm.bias.any()

    def graph_operator(self, x: Tensor) -> GraphOperator:
        """The affinity ``A`` this block builds for input ``x`` (for inspection and tests)."""
        x5 = self._check_input(x)
        nodes = _to_nodes(x5)
        shape = tuple(x5.shape[2:])
        theta, phi = _pointwise(self.theta, nodes), self._pool_keys(_pointwise(self.phi, nodes), shape)
        return self.affinity(theta, phi, x=x5, shape=shape)

    def _pool_keys(self, nodes: Tensor, shape: tuple[int, int, int]) -> Tensor:
        """Max-pool key-side node features ``(B, N, C)`` over ``subsample`` windows (a no-op without)."""
        if self.subsample == (1, 1, 1):
            return nodes
        pooled = F.max_pool3d(_from_nodes(nodes, shape), kernel_size=self.subsample, stride=self.subsample)
        return _to_nodes(pooled)

    def filter_input(self, x: Tensor) -> tuple[GraphOperator, Tensor]:
        """``(A, Z)`` for input ``x``: the graph and the node signal the filter acts on."""
        x5 = self._check_input(x)
        nodes = _to_nodes(x5)
        theta, phi, z = (_pointwise(getattr(self, n), nodes) for n in ("theta", "phi", "g"))
        return self.affinity(theta, phi, x=x5, shape=tuple(x5.shape[2:])), z

    def frequency_response(self, lam: Tensor) -> Tensor | None:
        """``H(λ)``, ``(G, C, C_s)``: the filter's response at the eigenvalues ``lam`` of ``A``.

        For an eigenvector ``v`` of ``A`` (eigenvalue ``λ``) and ``Z = v cᵀ`` the filter
        output (before the output norm) is ``v (H(λ) c)ᵀ``. ``None`` when the filter is not
        linear in ``Z`` (ARMA with a ReLU inside) or uses grouped projections (CGNL).
        """
        convs = [getattr(self, name) for name in self.weight_names]
        if any(c.groups != 1 for c in convs):
            return None
        weights = {name: c.weight.detach().flatten(1).to(lam.dtype) for name, c in zip(self.weight_names, convs)}
        with torch.no_grad():
            return self.filter.response(lam, weights)

    def _check_input(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(2)
        if x.dim() != 5:
            raise ValueError(
                f"{self.kind} block expects (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.kind} block was built for {self.in_channels} channels, got input with "
                f"{x.shape[1]} (shape {tuple(x.shape)})"
            )
        if x.shape[2] * x.shape[3] * x.shape[4] == 0:
            raise ValueError(f"{self.kind} block got an empty feature map, shape {tuple(x.shape)}")
        return x

    def forward(self, x: Tensor) -> Tensor:
        squeeze = x.dim() == 4
        out = self._check_input(x)
        for _ in range(self.recurrence):
            out = out + self._residual(out)
        return out.squeeze(2) if squeeze else out

    def _residual(self, x: Tensor) -> Tensor:
        shape = tuple(x.shape[2:])
        nodes = _to_nodes(x)
        # θ, φ and g in one matrix product (same function as three 1×1×1 convs).
        stacked = torch.cat([self.theta.weight, self.phi.weight, self.g.weight]).flatten(1)
        biases = None
        if self.theta.bias is not None:
            biases = torch.cat([self.theta.bias, self.phi.bias, self.g.bias])
        theta, phi, z = F.linear(nodes, stacked, biases).split(self.inter_channels, dim=-1)
        graph_dtype = z.dtype
        if self.upcast and z.dtype in (torch.float16, torch.bfloat16):
            # Degrees, softmaxes and N-term sums overflow or lose precision in half
            # precision; the graph part is cheap next to the backbone, so run it in fp32.
            graph_dtype = torch.float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            theta, phi, z = (t.to(graph_dtype) for t in (theta, phi, z))
            if self.subsample == (1, 1, 1):
                op = self.affinity(theta, phi, x=x.to(graph_dtype), shape=shape)
                signals = self.filter(op, z)
            else:
                op = self.affinity(theta, self._pool_keys(phi, shape), x=x.to(graph_dtype), shape=shape)
                signals = _subsampled_filter(op, z, self._pool_keys(z, shape), self.terms)
            # The projections stay in the graph's precision too: A Z of an unnormalised
            # affinity (A², dot product) can exceed the float16 range before the norm.
            projections = [getattr(self, name) for name in signals]
            if len(signals) > 1 and all(p.groups == 1 for p in projections):
                # Σ_k W_k s_k as one product: [s_1 … s_K] @ [W_1 … W_K]ᵀ.
                weight = torch.cat([p.weight.flatten(1) for p in projections], dim=1)
                out = F.linear(torch.cat(list(signals.values()), dim=-1).to(weight.dtype), weight)
            else:
                out = None
                for projection, signal in zip(projections, signals.values()):
                    projected = _pointwise(projection, signal.to(projection.weight.dtype))
                    out = projected if out is None else out + projected
        out = self.out_norm(_from_nodes(out, shape))
        if self.activation == "relu":
            # The open-at-zero subgradient matters only for training; in eval mode a plain ReLU
            # (the same values) keeps the block traceable (TorchScript, torch.export, ONNX).
            out = _ReLUOpenAtZero.apply(out) if self.training else F.relu(out)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"kind={self.kind!r}, in_channels={self.in_channels}, inter_channels={self.inter_channels}" + (
            f", {opts}" if opts else ""
        )


def _subsampled_filter(op: GraphOperator, z: Tensor, z_keys: Tensor, terms: Sequence[FilterTerm]) -> dict[str, Tensor]:
    """:func:`apply_graph_filter` for order ≤ 1 with sub-sampled keys: ``Z`` for the
    power-0 term (full resolution), ``A Z_keys`` for the power-1 term."""
    powers = {0: z, 1: op.matmul(z_keys)}
    grouped: dict[str, Tensor] = {}
    for term in terms:
        contribution = powers[term.power]
        if term.coefficient != 1.0:
            contribution = term.coefficient * contribution
        grouped[term.weight] = contribution if term.weight not in grouped else grouped[term.weight] + contribution
    return grouped


def _check_subsample(value: Any) -> tuple[int, int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f"subsample must be a list of 3 positive ints (t, h, w), e.g. [1, 2, 2], got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


# --------------------------------------------------------------------------------------
# Presets (the paper's Table 1). Each is a function of (in_channels, inter_channels,
# **options); its keyword arguments ARE the kind's options, with their defaults.
# --------------------------------------------------------------------------------------

_COMMON_DOC = "activation ('relu' as the official code | 'none'), zero_init, upcast"


# `subsample` (max-pooled φ and g, e.g. [1, 2, 2]) and `bias` (biased θ/φ/g convs) are what
# mmaction2's NonLocal3d(sub_sample=True) adds; with activation="none" (and scale for its
# use_scale) an nl / nl_dot block computes exactly that module (tested against a restatement).
_NO_SUBSAMPLE = [1, 1, 1]


def _nl(c, cs, *, scale: bool = False, subsample: list = _NO_SUBSAMPLE, bias: bool = False, activation="relu",
        zero_init=True, upcast=True):
    """Non-local, embedded Gaussian (Wang et al. 2018): A = softmax(θᵀφ); filter A Z W.
    subsample=[t, h, w] max-pools φ and g (the NL paper's [1, 2, 2]); bias: biased θ/φ/g."""
    return dict(affinity=EmbeddedGaussianAffinity(cs, scale=scale), terms=[FilterTerm(1, 1.0, "w2")],
                subsample=_check_subsample(subsample), bias=bias)


def _nl_dot(c, cs, *, impl: Impl = "auto", subsample: list = _NO_SUBSAMPLE, bias: bool = False, activation="relu",
            zero_init=True, upcast=True):
    """Non-local, dot product: A = θᵀφ / N (N: key positions); filter A Z W. subsample
    max-pools φ and g; bias: biased θ/φ/g."""
    _check_choice("impl", impl, ("auto", "dense", "linear"))
    return dict(affinity=FactorizedAffinity(cs, variant="dot", impl=impl), terms=[FilterTerm(1, 1.0, "w2")],
                subsample=_check_subsample(subsample), bias=bias)


def _ns(c, cs, *, scale: bool = False, subsample: list = _NO_SUBSAMPLE, bias: bool = False, activation="relu",
        zero_init=True, upcast=True):
    """Non-local stage (Zhu et al. 2019): A = softmax(θᵀφ); filter Z W - A Z W (one W).
    subsample max-pools φ and g of the A Z term (Z W keeps full resolution)."""
    return dict(
        affinity=EmbeddedGaussianAffinity(cs, scale=scale),
        terms=[FilterTerm(0, 1.0, "w2"), FilterTerm(1, -1.0, "w2")],
        subsample=_check_subsample(subsample), bias=bias,
    )


def _a2(c, cs, *, kernel: str = "relu", impl: Impl = "auto", activation="relu", zero_init=True, upcast=True):
    """Double attention (Chen et al. 2018): A = relu(θ)ᵀrelu(φ) unnormalised, as in the
    paper's code (kernel='relu'), or A²'s own softmax_c(θ)ᵀ softmax_N(φ) (kernel='softmax');
    filter A Z W."""
    _check_choice("kernel", kernel, ("relu", "softmax"))
    _check_choice("impl", impl, ("auto", "dense", "linear"))
    return dict(affinity=FactorizedAffinity(cs, variant=kernel, impl=impl), terms=[FilterTerm(1, 1.0, "w2")])


def _cgnl(
    c,
    cs,
    *,
    groups: int = 1,
    kernel: str = "gaussian",
    taylor_order: int = 2,
    gamma: float = 1e-4,
    scale: bool = False,
    activation="none",
    zero_init=True,
    upcast=True,
):
    """Compact generalised non-local (Yue et al. 2018): nodes are (position, channel)
    pairs within `groups` channel groups; Gaussian kernel Taylor-expanded to
    `taylor_order` (or kernel='dot'); filter A Z W (grouped W); GroupNorm output, no
    activation, as the CGNL and SNL code."""
    _check_positive_int("groups", groups)
    _check_choice("kernel", kernel, ("gaussian", "dot"))
    _check_positive_int("taylor_order", taylor_order)
    if cs % groups or c % groups:
        raise ValueError(f"cgnl: groups={groups} must divide in_channels={c} and inter_channels={cs}")
    return dict(
        affinity=CompactGeneralizedAffinity(
            groups=groups, kernel=kernel, taylor_order=taylor_order, gamma=gamma, scale=scale
        ),
        terms=[FilterTerm(1, 1.0, "w2")],
        norm="gn",
        norm_groups=groups,
        projection_groups=groups,
    )


def _cc(c, cs, *, recurrence: int = 2, scale: bool = False, activation="relu", zero_init=True, upcast=True):
    """Criss-cross (Huang et al. 2019) for video: A = softmax of θᵀφ over the t-, h- and
    w-lines through each position; applied `recurrence` times with shared weights (2
    passes connect every pair of positions, as CCNet's R = 2); filter A Z W."""
    _check_positive_int("recurrence", recurrence)
    return dict(
        affinity=CrissCrossAffinityBuilder(cs, scale=scale),
        terms=[FilterTerm(1, 1.0, "w2")],
        recurrence=recurrence,
    )


def _dnl(c, cs, *, scale: bool = True, temperature: float = 1.0, subsample: list = _NO_SUBSAMPLE,
         bias: bool = False, activation="relu", zero_init=True, upcast=True):
    """Disentangled non-local (Yin et al. 2020): A = softmax(whitened θᵀφ · s / τ) + 1uᵀ;
    filter A Z W. subsample max-pools φ, g and the unary logits."""
    return dict(
        affinity=DisentangledAffinity(c, cs, scale=scale, temperature=temperature),
        terms=[FilterTerm(1, 1.0, "w2")],
        subsample=_check_subsample(subsample), bias=bias,
    )


Filter = Literal["chebyshev", "cayley", "cayley_official", "arma"]

# Options of `snl` that only some filters read, with the filters that read them.
_FILTER_OPTIONS: dict[str, tuple[str, ...]] = {
    "order": ("chebyshev", "cayley"),
    "basis": ("chebyshev",),
    "zoom_init": ("cayley",),
    "solver": ("cayley", "arma"),
    "jacobi_iters": ("cayley",),
    "stacks": ("arma",),
    "layers": ("arma",),
    "shared_weights": ("arma",),
    "activation_inner": ("arma",),
    "feedback": ("arma",),
}


def _snl(
    c,
    cs,
    *,
    order: int = 1,
    impl: Impl = "auto",
    basis: Basis = "monomial",
    filter: Filter = "chebyshev",
    zoom_init: float = 1.0,
    solver: str = "auto",
    jacobi_iters: int = 10,
    stacks: int = 1,
    layers: int = 1,
    shared_weights: bool = False,
    activation_inner: Literal["relu", "none"] = "relu",
    feedback: Literal["full", "diagonal"] = "full",
    activation="relu",
    zero_init=True,
    upcast=True,
):
    """Spectral non-local (Zhu et al., ICCV 2021): A = D^-1/2 ((M+Mᵀ)/2) D^-1/2,
    M = relu(θ)ᵀrelu(φ); filter Z W1 + A Z W2 (+ A^k Z W_{k+1} up to k = order). impl:
    'dense' (N×N), 'linear' (exact O(N·C_s²) factorisation) or 'auto'. filter:
    'chebyshev' (that polynomial filter; basis 'monomial' A^k or 'chebyshev' T_k(A)),
    'cayley' (CayleyNets' order-r rational filter on L = I − A with learned zoom h,
    solver 'exact' (Woodbury on the linear path) or 'jacobi' with jacobi_iters),
    'cayley_official' (the released caylay.py: Z W1 + (Z W_h + L² Z) W2) or 'arma'
    (Bianchi et al.'s ARMA: stacks × layers of σ(A X W + Z V), solver 'recursion' or
    'exact' = the fixed point (I − wA)^-1 for activation_inner='none', feedback='diagonal').
    solver='auto' is the filter's default ('exact' for cayley, 'recursion' for arma)."""
    _check_choice("filter", filter, ("chebyshev", "cayley", "cayley_official", "arma"))
    _check_positive_int("order", order)
    _check_choice("impl", impl, ("auto", "dense", "linear"))
    _check_choice("basis", basis, ("monomial", "chebyshev"))
    given = dict(
        order=order, basis=basis, zoom_init=zoom_init, solver=solver, jacobi_iters=jacobi_iters, stacks=stacks,
        layers=layers, shared_weights=shared_weights, activation_inner=activation_inner, feedback=feedback,
    )
    defaults = nonlocal_options("snl")
    for name, filters in _FILTER_OPTIONS.items():
        if filter not in filters and given[name] != defaults[name]:
            raise ValueError(
                f"snl: option {name}={given[name]!r} applies to filter {' / '.join(filters)}, not to "
                f"filter={filter!r}; remove it or choose one of those filters"
            )
    spec: dict[str, Any] = dict(affinity=FactorizedAffinity(cs, variant="spectral", impl=impl))
    if filter == "chebyshev":
        spec.update(terms=chebyshev_terms(order), basis=basis)
    elif filter == "cayley":
        solver = "exact" if solver == "auto" else solver
        _check_choice("solver", solver, ("exact", "jacobi"))
        _check_positive_int("jacobi_iters", jacobi_iters)
        if isinstance(zoom_init, bool) or not isinstance(zoom_init, (int, float)) or not zoom_init > 0:
            raise ValueError(f"zoom_init must be a number > 0, got {zoom_init!r}")
        spec["graph_filter"] = lambda _cs: CayleyFilter(
            order=order, zoom_init=float(zoom_init), solver=solver, jacobi_iters=jacobi_iters  # type: ignore[arg-type]
        )
    elif filter == "cayley_official":
        spec["graph_filter"] = CayleyOfficialFilter
    else:
        solver = "recursion" if solver == "auto" else solver
        _check_choice("solver", solver, ("recursion", "exact"))
        _check_positive_int("stacks", stacks)
        _check_positive_int("layers", layers)
        _check_choice("shared_weights", shared_weights, (True, False))
        _check_choice("activation_inner", activation_inner, ("relu", "none"))
        _check_choice("feedback", feedback, ("full", "diagonal"))
        if solver == "exact" and layers != 1:
            raise ValueError("arma: solver='exact' is the T = ∞ fixed point; `layers` is unused, leave it at 1")
        spec["graph_filter"] = lambda _cs: ArmaFilter(
            _cs,
            stacks=stacks,
            layers=layers,
            shared_weights=shared_weights,
            activation_inner=activation_inner,
            feedback=feedback,
            solver=solver,  # type: ignore[arg-type]
        )
    return spec


def _snl_a1(c, cs, *, impl: Impl = "auto", activation="relu", zero_init=True, upcast=True):
    """SNL_a1 (the SNL paper's ablation, ICCV Table 8): SNL's symmetric normalised
    affinity A = D^-1/2 ((M+Mᵀ)/2) D^-1/2 with NL's single term: filter A Z W2
    (parameters as NL). impl as snl."""
    _check_choice("impl", impl, ("auto", "dense", "linear"))
    return dict(affinity=FactorizedAffinity(cs, variant="spectral", impl=impl), terms=[FilterTerm(1, 1.0, "w2")])


def _snl_a2(c, cs, *, scale: bool = False, subsample: list = _NO_SUBSAMPLE, bias: bool = False, activation="relu",
            zero_init=True, upcast=True):
    """SNL_a2 (the SNL paper's ablation, ICCV Table 8): NL's softmax affinity
    A = softmax_j(θ_i·φ_j) (scale: · C_s^-1/2) with SNL's full first-order filter
    Z W1 + A Z W2 (parameters as SNL). subsample max-pools φ and g of the A Z term."""
    return dict(affinity=EmbeddedGaussianAffinity(cs, scale=scale), terms=chebyshev_terms(1),
                subsample=_check_subsample(subsample), bias=bias)


def _gsnl(
    c,
    cs,
    *,
    affinity: Literal["softmax", "spectral"] = "softmax",
    impl: Impl = "auto",
    activation="none",
    zero_init=True,
    upcast=True,
):
    """gSNL as released in the 2019 spectral-nonlocal-block code: Z W1 + A Z W2 +
    (2A − I) Z W3 on the softmax affinity softmax_j(θ_i·φ_j) (affinity='spectral': SNL's),
    no ReLU after the norm by default (the code's --relu 0). Since 2A − I is linear in A,
    this is a re-parametrised first-order filter, Z (W1 − W3) + A Z (W2 + 2 W3), not a
    second-order one (T_2 = 2A² − I would be). impl applies to affinity='spectral'."""
    _check_choice("affinity", affinity, ("softmax", "spectral"))
    _check_choice("impl", impl, ("auto", "dense", "linear"))
    if affinity == "softmax" and impl != "auto":
        raise ValueError("gsnl: impl applies to affinity='spectral' only (the softmax affinity is always dense)")
    builder: AffinityBuilder = (
        EmbeddedGaussianAffinity(cs, scale=False)
        if affinity == "softmax"
        else FactorizedAffinity(cs, variant="spectral", impl=impl)
    )
    terms = [FilterTerm(0, 1.0, "w1"), FilterTerm(1, 1.0, "w2"), FilterTerm(1, 2.0, "w3"), FilterTerm(0, -1.0, "w3")]
    return dict(affinity=builder, terms=terms)


_PRESETS: dict[str, Callable[..., dict[str, Any]]] = {
    "nl": _nl,
    "nl_dot": _nl_dot,
    "ns": _ns,
    "a2": _a2,
    "cgnl": _cgnl,
    "cc": _cc,
    "dnl": _dnl,
    "snl": _snl,
    "snl_a1": _snl_a1,
    "snl_a2": _snl_a2,
    "gsnl": _gsnl,
}

_BLOCK_LEVEL_OPTIONS = ("activation", "zero_init", "upcast")

# Transform-domain kinds (SRB, BAT, …): residual blocks that are not an affinity × graph
# filter, each its own nn.Module in its own file, placed by the same placement spec. A
# factory is ``factory(in_channels, *, inter_channels=None, **options) -> nn.Module``; its
# keyword-only arguments (``inter_channels`` aside) are the kind's options, with defaults.
_MODULE_KINDS: dict[str, Callable[..., nn.Module]] = {}

KindFamily = Literal["all", "graph", "transform"]


def register_block_kind(name: str, factory: Callable[..., nn.Module]) -> None:
    """Register a transform-domain block kind (a duplicate name is an error)."""
    if name in _PRESETS or name in _MODULE_KINDS:
        raise ValueError(f"non-local kind {name!r} is already registered")
    _MODULE_KINDS[name] = factory


def list_nonlocal_kinds(family: KindFamily = "all") -> list[str]:
    """Names accepted by :func:`build_nonlocal`: ``graph`` kinds (a :class:`NonLocalBlock`,
    affinity × graph filter), ``transform`` kinds (SRB, BAT) or ``all``."""
    _check_choice("family", family, ("all", "graph", "transform"))
    graph = list(_PRESETS) if family in ("all", "graph") else []
    return graph + (list(_MODULE_KINDS) if family in ("all", "transform") else [])


def nonlocal_options(kind: str) -> dict[str, Any]:
    """The options of ``kind`` with their defaults (``inter_channels`` aside)."""
    preset = _preset(kind)
    return {
        name: p.default
        for name, p in inspect.signature(preset).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "inter_channels"
    }


def describe_nonlocal(kind: str) -> str:
    """One paragraph on what ``kind`` computes."""
    return inspect.getdoc(_preset(kind)) or kind


def _preset(kind: str) -> Callable[..., Any]:
    if isinstance(kind, str) and kind in _MODULE_KINDS:
        return _MODULE_KINDS[kind]
    if not isinstance(kind, str) or kind not in _PRESETS:
        raise ValueError(f"unknown non-local kind {kind!r}; valid kinds: {', '.join(list_nonlocal_kinds())}")
    return _PRESETS[kind]


def build_nonlocal(
    kind: str, in_channels: int, *, inter_channels: int | None = None, **options: Any
) -> nn.Module:
    """Build a non-local block of ``kind`` for ``in_channels``-channel feature maps.

    Args:
        kind: one of :func:`list_nonlocal_kinds` (``nl``, ``nl_dot``, ``ns``, ``a2``,
            ``cgnl``, ``cc``, ``dnl``, ``snl``).
        in_channels: channels ``C`` of the input (and output).
        inter_channels: embedding channels ``C_s``; default ``in_channels // 2``.
        **options: per-kind options, see :func:`nonlocal_options`; e.g. ``order`` and
            ``impl`` for ``snl``. An unknown option is an error listing the valid ones.

    Returns:
        A :class:`NonLocalBlock` that starts as the identity, or for a transform-domain
        kind (``srb``, ``bat``) that kind's module.
    """
    preset = _preset(kind)
    _check_positive_int("in_channels", in_channels)
    if kind in _MODULE_KINDS:
        unknown = sorted(set(options) - set(nonlocal_options(kind)))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for non-local kind {kind!r}; valid options: "
                + ", ".join(f"{k}={v!r}" for k, v in nonlocal_options(kind).items())
            )
        return preset(in_channels, inter_channels=inter_channels, **options)
    if inter_channels is None:
        inter_channels = max(in_channels // 2, 1)
    _check_positive_int("inter_channels", inter_channels)
    valid = nonlocal_options(kind)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for non-local kind {kind!r}; valid options: "
            + ", ".join(f"{k}={v!r}" for k, v in valid.items())
        )
    resolved = {**valid, **options}
    _check_choice("activation", resolved["activation"], ("relu", "none"))
    spec = preset(in_channels, inter_channels, **options)
    block_kwargs = {k: resolved[k] for k in _BLOCK_LEVEL_OPTIONS}
    block = NonLocalBlock(in_channels, inter_channels, kind=kind, options=options, **block_kwargs, **spec)
    logger.debug("built %r", block)
    return block
