"""The unified non-local block: ``y = x + act(norm(Σ_k W_k P_k(A) Z))``.

One class for every graph kind: an affinity builder (:mod:`.affinity_builders`) makes
``A`` from ``θ(x)``, ``φ(x)``, a graph filter (:mod:`.filters`, :mod:`.rational`) applies
``Σ_k W_k P_k(A)`` to ``Z = g(x)``, and a zero-initialised output norm makes a new block the
identity. The named kinds are presets over this class (:mod:`.presets`); build them by
name with :func:`~snl_video.nonlocal_blocks.build_nonlocal` (:mod:`.registry`).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .affinity import GraphOperator
from .affinity_builders import AffinityBuilder, DisentangledAffinity
from .checks import check_positive_int, check_subsample
from .filters import Basis, FilterTerm, GraphFilter, PolynomialFilter
from ..errors import InvalidValueError

__all__ = ["NonLocalBlock", "ReLUOpenAtZero"]


class ReLUOpenAtZero(torch.autograd.Function):
    """``relu`` whose backward passes the gradient where the input is exactly 0.

    ``relu'(0)`` is any value in ``[0, 1]``; PyTorch picks 0. Here it is 1, because the
    block's output norm starts at zero (so the block is the identity): with 0, the
    gradient of the zero-initialised norm would be exactly zero forever and the block
    could never leave the identity. The forward value is the ordinary ``relu``.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x >= 0).to(grad.dtype)


def _to_nodes(x: Tensor) -> Tensor:
    """``(B, C, T, H, W)`` → ``(B, N, C)``."""
    return x.flatten(2).transpose(1, 2)


def _map_shape(x5: Tensor) -> tuple[int, int, int]:
    """``(T, H, W)`` of a ``(B, C, T, H, W)`` tensor."""
    t, h, w = x5.shape[2:]
    return (t, h, w)


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
        check_positive_int("in_channels", in_channels)
        check_positive_int("inter_channels", inter_channels)
        check_positive_int("recurrence", recurrence)
        if activation not in ("relu", "none"):
            raise InvalidValueError(f"activation must be 'relu' or 'none', got {activation!r}")
        if norm not in ("bn", "gn"):
            raise InvalidValueError(f"norm must be 'bn' or 'gn', got {norm!r}")
        self.kind = kind
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.terms = tuple(terms)
        self.basis = basis
        self.activation = activation
        self.recurrence = recurrence
        self.upcast = upcast
        self.options = dict(options or {})
        self.subsample = check_subsample(subsample)
        if self.subsample != (1, 1, 1) and (graph_filter is not None or not self.terms
                                            or max(t.power for t in self.terms) > 1):
            raise InvalidValueError(f"{kind}: subsample={list(self.subsample)} needs a polynomial filter of order <= 1 "
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
                raise InvalidValueError(f"GroupNorm: {in_channels} channels are not divisible by {norm_groups} groups")
            self.gn = nn.GroupNorm(norm_groups, in_channels)
            self._norm_name = "gn"
        self.reset_parameters(zero_init=zero_init)

    @property
    def out_norm(self) -> nn.BatchNorm3d | nn.GroupNorm:
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
        """The affinity ``A`` this block builds for input ``x`` (for inspection and tests).

        Built as :meth:`forward` builds it: under fp16/bf16 autocast the projections ``θ``,
        ``φ`` are computed in half precision and, with ``upcast`` (the default), the affinity
        from them in float32 with autocast off; its rows are then float32 wherever they are read.
        """
        x5 = self._check_input(x)
        nodes = _to_nodes(x5)
        shape = _map_shape(x5)
        theta, phi = _pointwise(self.theta, nodes), self._pool_keys(_pointwise(self.phi, nodes), shape)
        graph_dtype = theta.dtype
        if self.upcast and theta.dtype in (torch.float16, torch.bfloat16):
            graph_dtype = torch.float32
        with torch.autocast(device_type=x5.device.type, enabled=False):
            return self.affinity(theta.to(graph_dtype), phi.to(graph_dtype), x=x5.to(graph_dtype), shape=shape)

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
        return self.affinity(theta, phi, x=x5, shape=_map_shape(x5)), z

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
        shape = _map_shape(x)
        nodes = _to_nodes(x)
        # θ, φ and g in one matrix product (same function as three 1×1×1 convs).
        stacked = torch.cat([self.theta.weight, self.phi.weight, self.g.weight]).flatten(1)
        biases = None
        theta_bias, phi_bias, g_bias = self.theta.bias, self.phi.bias, self.g.bias
        if theta_bias is not None:
            assert phi_bias is not None and g_bias is not None  # θ, φ and g are built with one `bias` flag
            biases = torch.cat([theta_bias, phi_bias, g_bias])
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
        assert out is not None  # every filter has at least one term, so at least one projection
        out = self.out_norm(_from_nodes(out, shape))
        if self.activation == "relu":
            # The open-at-zero subgradient matters only for training; in eval mode a plain ReLU
            # (the same values) keeps the block traceable (TorchScript, torch.export, ONNX).
            out = ReLUOpenAtZero.apply(out) if self.training else F.relu(out)
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
