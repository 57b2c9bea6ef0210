"""Affinity operators: the graph ``A`` over which every non-local block filters.

The paper's unifying view (Zhu et al., ICCV 2021, Table 1) is that all non-local blocks
apply a graph filter to node signals ``Z`` on a fully connected graph whose nodes are the
feature-map positions (T·H·W of them in video). The blocks differ in how the affinity
matrix ``A`` is built. This module is the one place where affinities are built.

An affinity is represented as an *operator*, not necessarily as a matrix: what a graph
filter needs is ``A @ Z`` (and powers of it). That lets low-rank affinities (SNL, A²,
dot product) apply ``A`` in ``O(N·C_s²)`` without ever forming the ``N×N`` matrix, and the
criss-cross affinity apply its sparse pattern in ``O(N·(T+H+W))``. Every operator can
still materialise itself with :meth:`GraphOperator.dense` for inspection and tests.

Conventions: node signals are ``(B, N, C)`` tensors (batch, nodes, channels); embeddings
``theta`` and ``phi`` are ``(B, N, C_s)``. ``N = T·H·W`` in the order of
``x.flatten(2)`` for an input ``x`` of shape ``(B, C, T, H, W)``.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import Tensor

from ..errors import InvalidValueError

__all__ = [
    "GraphOperator",
    "DenseAffinity",
    "LowRankAffinity",
    "SumAffinity",
    "CrissCrossAffinity",
    "TaylorChannelAffinity",
    "softmax_affinity",
    "spectral_affinity",
    "inverse_sqrt_degrees",
]

Normalization = Literal["none", "count", "symmetric"]


class GraphOperator:
    """A linear operator ``Z ↦ A Z`` on node signals of shape ``(B, N, C)``.

    Subclasses implement :meth:`matmul`; :meth:`dense` returns the ``(B, N, N)`` matrix
    (by default by applying the operator to the identity, which is exact but costs
    ``O(N²)`` memory: meant for small graphs, inspection and tests).
    """

    num_nodes: int

    def matmul(self, z: Tensor) -> Tensor:
        """Return ``A @ z`` for ``z`` of shape ``(B, N, C)``."""
        raise NotImplementedError

    def dense(self) -> Tensor:
        """The affinity as a ``(B, N, N)`` matrix."""
        raise NotImplementedError

    def diagonal(self) -> Tensor:
        """The diagonal ``a_ii`` as a ``(B, N)`` tensor (Jacobi iterations need it).

        The default reads it off :meth:`dense`; low-rank operators override it with an
        ``O(N·r)`` formula.
        """
        return self.dense().diagonal(dim1=1, dim2=2)

    def row(self, index: int) -> Tensor:
        """Row ``index`` of ``A`` as ``(B, N)``: how node ``index`` weighs every node.

        Generic fallback through :meth:`dense` (``O(N²)``); operators that can do better
        (dense, low-rank, sums) override it.
        """
        return self.dense()[:, index, :]

    def _dense_by_probing(self, batch: int, like: Tensor) -> Tensor:
        eye = torch.eye(self.num_nodes, dtype=like.dtype, device=like.device)
        return self.matmul(eye.expand(batch, -1, -1))


class DenseAffinity(GraphOperator):
    """An affinity held as an explicit ``(B, N, N)`` matrix, or ``(B, N, M)`` from ``N`` query
    nodes to ``M`` key nodes (a block whose keys are sub-sampled: only ``A Z`` is defined)."""

    def __init__(self, matrix: Tensor) -> None:
        if matrix.dim() != 3:
            raise ValueError(f"expected a (B, N, N) or (B, N, M) affinity, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.num_nodes = matrix.shape[1]

    def matmul(self, z: Tensor) -> Tensor:
        return torch.bmm(self.matrix, z)

    def dense(self) -> Tensor:
        return self.matrix

    def diagonal(self) -> Tensor:
        return self.matrix.diagonal(dim1=1, dim2=2)

    def row(self, index: int) -> Tensor:
        return self.matrix[:, index, :]


class SumAffinity(GraphOperator):
    """``A = A_1 + A_2 + ...``: e.g. DNL's pairwise + unary terms."""

    def __init__(self, parts: Sequence[GraphOperator]) -> None:
        if not parts:
            raise ValueError("SumAffinity needs at least one part")
        sizes = {int(p.num_nodes) for p in parts}  # int(): under tracing a size may be a 0-d tensor
        if len(sizes) != 1:
            raise ValueError(f"all parts must have the same number of nodes, got {sorted(sizes)}")
        self.parts = list(parts)
        self.num_nodes = sizes.pop()

    def matmul(self, z: Tensor) -> Tensor:
        out = self.parts[0].matmul(z)
        for part in self.parts[1:]:
            out = out + part.matmul(z)
        return out

    def dense(self) -> Tensor:
        out = self.parts[0].dense()
        for part in self.parts[1:]:
            out = out + part.dense()
        return out

    def row(self, index: int) -> Tensor:
        out = self.parts[0].row(index)
        for part in self.parts[1:]:
            out = out + part.row(index)
        return out


def inverse_sqrt_degrees(degrees: Tensor) -> Tensor:
    """``d^-1/2`` where ``d > 0`` and ``0`` where ``d == 0``, with finite gradients.

    This is the official SNL code's ``d[d != 0] = sqrt(1 / d[d != 0])``: a node with no
    edges (zero degree) keeps a zero row and column in ``D^-1/2 M D^-1/2`` instead of
    producing ``inf``/``nan``. The ``where`` on the input keeps the backward pass finite.
    """
    positive = degrees > 0
    safe = torch.where(positive, degrees, torch.ones_like(degrees))
    return torch.where(positive, safe.rsqrt(), torch.zeros_like(degrees))


class LowRankAffinity(GraphOperator):
    """``A = normalise(symmetrise(L Rᵀ))`` applied without forming ``L Rᵀ`` (rank ≤ r).

    Args:
        left: ``(B, N, r)`` left factor ``L``.
        right: ``(B, N, r)`` right factor ``R``; ``M = L Rᵀ``.
        symmetrize: use ``(M + Mᵀ) / 2`` (SNL) instead of ``M``.
        normalization: ``"none"`` (A²), ``"count"`` (divide by ``N``: the NL paper's dot
            product version) or ``"symmetric"`` (``D^-1/2 M D^-1/2`` with ``D`` the row
            sums, zero-degree rows left at zero: SNL).

    Cost of :meth:`matmul`: ``O(N·r·C)`` time, ``O(N·(r + C))`` memory. For SNL this is the
    exact linear-time form of the paper's block: ``d = (L(Rᵀ1) + R(Lᵀ1)) / 2`` and
    ``A Z = d^-1/2 ⊙ (L(Rᵀ(d^-1/2 ⊙ Z)) + R(Lᵀ(d^-1/2 ⊙ Z))) / 2``.
    """

    def __init__(
        self,
        left: Tensor,
        right: Tensor,
        *,
        symmetrize: bool = False,
        normalization: Normalization = "none",
    ) -> None:
        rectangular_ok = not symmetrize and normalization != "symmetric"
        same = left.shape == right.shape or (
            rectangular_ok and left.dim() == right.dim() == 3
            and (left.shape[0], left.shape[2]) == (right.shape[0], right.shape[2])
        )
        if left.dim() != 3 or not same:
            raise ValueError(
                f"left and right factors must both be (B, N, r) (right may be (B, M, r) for an unsymmetrised, "
                f"not degree-normalised affinity); got {tuple(left.shape)} and {tuple(right.shape)}"
            )
        if normalization not in ("none", "count", "symmetric"):
            raise InvalidValueError(
                f"normalization must be 'none', 'count' or 'symmetric', got {normalization!r}"
            )
        self.left = left
        self.right = right
        self.symmetrize = symmetrize
        self.normalization = normalization
        self.num_nodes = left.shape[1]
        self._pq: tuple[Tensor, Tensor] | None = None
        self._scale: Tensor | None = None
        if normalization == "symmetric":
            self._scale = inverse_sqrt_degrees(self.degrees()).unsqueeze(-1)

    def _factors(self) -> tuple[Tensor, Tensor]:
        """``(P, Q)`` with ``M = P Qᵀ``; for the symmetrised ``(L Rᵀ + R Lᵀ)/2`` that is
        ``P = [L, R]``, ``Q = [R, L] / 2`` (rank 2r, one product instead of two)."""
        if self._pq is None:
            if self.symmetrize:
                self._pq = (
                    torch.cat([self.left, self.right], dim=2),
                    0.5 * torch.cat([self.right, self.left], dim=2),
                )
            else:
                self._pq = (self.left, self.right)
        return self._pq

    def _unnormalized_matmul(self, z: Tensor) -> Tensor:
        # P (Qᵀ z): the r×C product is formed first, never the N×N one.
        p, q = self._factors()
        return torch.bmm(p, torch.bmm(q.transpose(1, 2), z))

    def degrees(self) -> Tensor:
        """Row sums of the (symmetrised) unnormalised affinity, shape ``(B, N)``."""
        p, q = self._factors()
        return torch.bmm(p, q.sum(dim=1).unsqueeze(-1)).squeeze(-1)

    def factors(self) -> tuple[Tensor, Tensor]:
        """``(U, V)`` with ``A = U Vᵀ`` exactly, both ``(B, N, r')`` (``r' = 2r`` if symmetrised).

        Normalisation is folded in (``U = D^-1/2 P``, ``V = D^-1/2 Q`` for SNL, ``V = Q / N``
        for the count normalisation). Rational filters use them for exact ``O(N·r'²)``
        Woodbury solves, and the spectrum inspector for the ``r'×r'`` eigenproblem.
        """
        p, q = self._factors()
        if self.normalization == "symmetric":
            assert self._scale is not None
            return self._scale * p, self._scale * q
        if self.normalization == "count":
            return p, q / self.num_nodes
        return p, q

    def diagonal(self) -> Tensor:
        u, v = self.factors()
        return (u * v).sum(dim=-1)

    def matmul(self, z: Tensor) -> Tensor:
        if self.normalization == "symmetric":
            assert self._scale is not None
            return self._scale * self._unnormalized_matmul(self._scale * z)
        out = self._unnormalized_matmul(z)
        if self.normalization == "count":
            out = out / self.right.shape[1]  # the number of key nodes (N, or M when sub-sampled)
        return out

    def row(self, index: int) -> Tensor:
        """Row ``index`` in ``O(N·r)``, never forming ``N×N``: ``M_i· = P_i Qᵀ``, then the
        normalisation (``s_i M_ij s_j`` for the symmetric one, ``/ N`` for the count)."""
        p, q = self._factors()
        out = torch.bmm(p[:, index : index + 1, :], q.transpose(1, 2)).squeeze(1)
        if self.normalization == "symmetric":
            assert self._scale is not None
            scale = self._scale.squeeze(-1)
            out = out * scale[:, index : index + 1] * scale
        elif self.normalization == "count":
            out = out / self.num_nodes
        return out

    def dense(self) -> Tensor:
        m = torch.bmm(self.left, self.right.transpose(1, 2))
        if self.symmetrize:
            m = 0.5 * (m + m.transpose(1, 2))
        if self.normalization == "count":
            m = m / self.right.shape[1]
        elif self.normalization == "symmetric":
            inv_sqrt = inverse_sqrt_degrees(m.sum(dim=2))
            m = m * inv_sqrt.unsqueeze(1) * inv_sqrt.unsqueeze(2)
        return m


def softmax_affinity(
    theta: Tensor, phi: Tensor, *, scale: float = 1.0, temperature: float = 1.0
) -> DenseAffinity:
    """Embedded-Gaussian affinity ``softmax_j(scale · θ_i·φ_j / temperature)`` (NL, NS).

    Row-stochastic (random-walk normalised): every row sums to one.
    """
    logits = torch.bmm(theta, phi.transpose(1, 2))
    factor = scale / temperature
    if factor != 1.0:
        logits = logits * factor
    return DenseAffinity(torch.softmax(logits, dim=-1))


def spectral_affinity(
    theta: Tensor, phi: Tensor, *, impl: Literal["dense", "linear"] = "linear"
) -> GraphOperator:
    """SNL affinity ``A = D^-1/2 ((M + Mᵀ)/2) D^-1/2`` with ``M = relu(θ) relu(φ)ᵀ``.

    ``impl="linear"`` keeps the rank-``C_s`` factorisation (never forms ``N×N``);
    ``impl="dense"`` materialises the matrix exactly as the official code does. They are
    the same function (up to floating-point rounding).
    """
    op = LowRankAffinity(
        torch.relu(theta), torch.relu(phi), symmetrize=True, normalization="symmetric"
    )
    if impl == "dense":
        return DenseAffinity(op.dense())
    if impl == "linear":
        return op
    raise InvalidValueError(f"impl must be 'dense' or 'linear', got {impl!r}")


class CrissCrossAffinity(GraphOperator):
    """Criss-cross attention for video: each node attends to its t-, h- and w-lines.

    Node ``(t, h, w)`` is connected to every node that shares two of its three
    coordinates: the ``T`` nodes of its temporal line, the ``H`` of its vertical line and
    the ``W`` of its horizontal line, itself counted once (``T + H + W - 2`` neighbours).
    The weights are one softmax over that union of ``θ_i·φ_j`` (CCNet's scheme extended
    from two spatial lines to three space-time lines). Applied in ``O(N·(T+H+W)·C)``.
    """

    def __init__(self, theta: Tensor, phi: Tensor, shape: tuple[int, int, int], *, scale: float = 1.0):
        batch, nodes, channels = theta.shape
        t, h, w = shape
        if nodes != t * h * w:
            raise ValueError(f"{nodes} nodes do not match the map shape {shape}")
        self.shape = shape
        self.num_nodes = nodes
        th = theta.reshape(batch, t, h, w, channels)
        ph = phi.reshape(batch, t, h, w, channels)
        # Energies along each line, indexed [b, t, h, w, neighbour on that line].
        e_t = torch.einsum("bthwc,bshwc->bthws", th, ph)
        e_h = torch.einsum("bthwc,btgwc->bthwg", th, ph)
        e_w = torch.einsum("bthwc,bthvc->bthwv", th, ph)
        if scale != 1.0:
            e_t, e_h, e_w = e_t * scale, e_h * scale, e_w * scale
        # The node itself lies on all three lines: keep it on the temporal line only.
        eye_h = torch.eye(h, dtype=torch.bool, device=theta.device).view(1, 1, h, 1, h)
        eye_w = torch.eye(w, dtype=torch.bool, device=theta.device).view(1, 1, 1, w, w)
        e_h = e_h.masked_fill(eye_h, float("-inf"))
        e_w = e_w.masked_fill(eye_w, float("-inf"))
        weights = torch.softmax(torch.cat([e_t, e_h, e_w], dim=-1), dim=-1)
        self.a_t, self.a_h, self.a_w = torch.split(weights, [t, h, w], dim=-1)

    def matmul(self, z: Tensor) -> Tensor:
        batch, nodes, channels = z.shape
        t, h, w = self.shape
        z5 = z.reshape(batch, t, h, w, channels)
        out = torch.einsum("bthws,bshwc->bthwc", self.a_t, z5)
        out = out + torch.einsum("bthwg,btgwc->bthwc", self.a_h, z5)
        out = out + torch.einsum("bthwv,bthvc->bthwc", self.a_w, z5)
        return out.reshape(batch, nodes, channels)

    def dense(self) -> Tensor:
        return self._dense_by_probing(self.a_t.shape[0], self.a_t)


class TaylorChannelAffinity(GraphOperator):
    """CGNL's compact generalised affinity over (position, channel) nodes.

    CGNL (Yue et al., NeurIPS 2018) lets every (position, channel) pair of a channel group
    interact: ``A[(i,c),(j,c')] = f(θ_ic, φ_jc')``. With the dot kernel ``f = θφ`` and with
    the Gaussian RBF kernel expanded to order ``P`` in a Taylor series,
    ``f(θ, φ) = Σ_p α_p² θ^p φ^p`` with ``α_p² = β (2γ)^p / p!`` and ``β = exp(-2γ)`` (the
    simplification used by the CGNL and SNL code), ``A`` has rank ``P + 1`` per group, so
    ``(A Z)_ic = Σ_p α_p² θ_ic^p Σ_jc' φ_jc'^p Z_jc'`` costs ``O(N·C_s·P)``.

    :meth:`matmul` takes ``Z`` as ``(B, N, C_s)``; node ``(i, c)`` is ``Z[:, i, c]``.
    """

    def __init__(
        self,
        theta: Tensor,
        phi: Tensor,
        *,
        groups: int,
        kernel: Literal["gaussian", "dot"] = "gaussian",
        taylor_order: int = 2,
        gamma: float = 1e-4,
        scale: float = 1.0,
    ) -> None:
        batch, nodes, channels = theta.shape
        if channels % groups:
            raise InvalidValueError(f"{channels} channels cannot be split into {groups} groups")
        self.num_nodes = nodes
        self.groups = groups
        self.kernel = kernel
        self.theta = theta
        self.phi = phi
        if kernel == "gaussian":
            beta = math.exp(-2.0 * gamma)
            self.coefficients = [
                beta * (2.0 * gamma) ** p / math.factorial(p) * scale for p in range(taylor_order + 1)
            ]
        elif kernel == "dot":
            self.coefficients = [0.0, scale]
        else:
            raise InvalidValueError(f"kernel must be 'gaussian' or 'dot', got {kernel!r}")

    def _grouped(self, x: Tensor) -> Tensor:
        batch, nodes, channels = x.shape
        # (B, G, N * C_g): one flat signal per group, nodes ordered (position, channel).
        return (
            x.reshape(batch, nodes, self.groups, channels // self.groups)
            .permute(0, 2, 1, 3)
            .reshape(batch, self.groups, -1)
        )

    def _ungrouped(self, x: Tensor, like: Tensor) -> Tensor:
        batch, nodes, channels = like.shape
        return (
            x.reshape(batch, self.groups, nodes, channels // self.groups)
            .permute(0, 2, 1, 3)
            .reshape(batch, nodes, channels)
        )

    def matmul(self, z: Tensor) -> Tensor:
        t, p, zg = self._grouped(self.theta), self._grouped(self.phi), self._grouped(z)
        out = torch.zeros_like(zg)
        for power, coef in enumerate(self.coefficients):
            if coef == 0.0:
                continue
            if power == 0:
                out = out + coef * zg.sum(dim=-1, keepdim=True)
            else:
                out = out + coef * t.pow(power) * (p.pow(power) * zg).sum(dim=-1, keepdim=True)
        return self._ungrouped(out, z)

    def dense(self) -> Tensor:
        """``(B, N·C_s, N·C_s)`` over nodes ``i·C_s + c`` (zero across groups)."""
        batch, nodes, channels = self.theta.shape
        size = nodes * channels
        eye = torch.eye(size, dtype=self.theta.dtype, device=self.theta.device)
        # Column k of A is A applied to the k-th basis signal.
        probes = eye.reshape(size, nodes, channels)
        cols = torch.stack([self.matmul(probes[k].expand(batch, -1, -1)) for k in range(size)], dim=-1)
        return cols.reshape(batch, size, size)
