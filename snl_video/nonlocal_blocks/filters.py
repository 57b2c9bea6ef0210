"""The graph filter every non-local block applies: ``F(A, Z) = Σ_k P_k(A) Z W_k``.

In the paper's unified formulation (Eq. 7-12) a non-local block is a (truncated)
Chebyshev graph filter on the affinity ``A``. Blocks differ in which terms they keep and
which weights they tie (Table 1): NL keeps ``A Z W``; NS keeps ``Z W - A Z W`` with one
shared ``W``; SNL keeps the full first order ``Z W1 + A Z W2``; SNL of order ``K`` adds
``A^k Z W_{k+1}`` for ``k = 2..K``. This module is the one place that applies them.

A filter is described by :class:`FilterTerm` records (power of ``A``, coefficient, name of
the weight). Terms naming the same weight are summed *before* the weight is applied, so a
tied weight costs one projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError
from .affinity import GraphOperator

__all__ = [
    "POLYNOMIAL_OPTIONS",
    "FilterTerm",
    "GraphFilter",
    "PolynomialFilter",
    "apply_graph_filter",
    "chebyshev_terms",
    "polynomial_values",
]

Basis = Literal["monomial", "chebyshev"]

#: The ``snl`` options the polynomial (Chebyshev) filter reads; ``order`` and ``basis`` are
#: checked by the preset, since ``order`` is shared with the Cayley filter.
POLYNOMIAL_OPTIONS = ("order", "basis")


@dataclass(frozen=True)
class FilterTerm:
    """One term ``coefficient · P_power(A) Z`` projected by the weight named ``weight``."""

    power: int
    coefficient: float
    weight: str

    def __post_init__(self) -> None:
        if self.power < 0:
            raise ValueError(f"a filter term's power must be >= 0, got {self.power}")


def chebyshev_terms(order: int) -> tuple[FilterTerm, ...]:
    """Terms of the order-``K`` spectral filter: ``Σ_{k=0..K} P_k(A) Z W_{k+1}``."""
    if order < 1:
        raise InvalidValueError(f"order must be >= 1, got {order}")
    return tuple(FilterTerm(k, 1.0, f"w{k + 1}") for k in range(order + 1))


def _polynomial_signals(op: GraphOperator, z: Tensor, max_power: int, basis: Basis) -> list[Tensor]:
    """``[P_0(A) z, ..., P_K(A) z]`` with ``P_k = A^k`` or Chebyshev ``T_k``.

    Chebyshev: ``T_0 = I``, ``T_1 = A``, ``T_k = 2 A T_{k-1} - T_{k-2}``. For an SNL
    affinity (spectrum in ``[-1, 1]``) both bases span the same polynomials; the
    Chebyshev one keeps the terms bounded, the monomial one is the paper's notation.
    """
    signals = [z]
    for k in range(1, max_power + 1):
        applied = op.matmul(signals[-1])
        if basis == "chebyshev" and k >= 2:
            applied = 2.0 * applied - signals[-2]
        signals.append(applied)
    return signals


def apply_graph_filter(
    op: GraphOperator,
    z: Tensor,
    terms: Sequence[FilterTerm],
    *,
    basis: Basis = "monomial",
) -> dict[str, Tensor]:
    """Return, for each weight name, the node signal ``Σ coefficient · P_power(A) z``.

    The caller projects each returned ``(B, N, C_s)`` signal with its weight and sums the
    projections; returning signals per weight (instead of projecting here) keeps the
    weights as plain submodules of the block, with their own state-dict names.
    """
    if basis not in ("monomial", "chebyshev"):
        raise InvalidValueError(f"basis must be 'monomial' or 'chebyshev', got {basis!r}")
    if not terms:
        raise ValueError("a graph filter needs at least one term")
    signals = _polynomial_signals(op, z, max(t.power for t in terms), basis)
    grouped: dict[str, Tensor] = {}
    for term in terms:
        contribution = signals[term.power]
        if term.coefficient != 1.0:
            contribution = term.coefficient * contribution
        grouped[term.weight] = contribution if term.weight not in grouped else grouped[term.weight] + contribution
    return grouped


def polynomial_values(lam: Tensor, max_power: int, basis: Basis) -> list[Tensor]:
    """``[P_0(λ), ..., P_K(λ)]`` (monomials or Chebyshev ``T_k``) evaluated at the points ``lam``."""
    values = [torch.ones_like(lam)]
    for k in range(1, max_power + 1):
        nxt = lam * values[-1]
        if basis == "chebyshev" and k >= 2:
            nxt = 2.0 * nxt - values[-2]
        values.append(nxt)
    return values


class GraphFilter(nn.Module):
    """A graph filter ``Z ↦ {weight name: node signal}``; the block projects and sums.

    ``forward(op, z)`` returns, for each name in :attr:`weight_names`, the ``(B, N, C_s)``
    signal that the block's 1×1×1 conv of that name projects to ``C`` channels; the
    block's filter output is the sum of the projections. A filter may own parameters of
    its own (Cayley's zoom, ARMA's recursion weights).

    ``response(lam, weights)`` is the frequency response: for an eigenvector ``v`` of
    ``A`` with eigenvalue ``λ`` and an input ``Z = v cᵀ``, the filter output is
    ``v (H(λ) c)ᵀ``; it returns ``H`` as ``(G, C, C_s)`` for the ``G`` points ``lam``
    (``weights`` maps each weight name to its ``(C, C_s)`` matrix), or ``None`` where the
    filter is not linear in ``Z`` (e.g. ARMA with a ReLU inside).
    """

    weight_names: tuple[str, ...] = ()

    def forward(self, op: GraphOperator, z: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def response(self, lam: Tensor, weights: Mapping[str, Tensor]) -> Tensor | None:
        return None

    def solves_per_forward(self) -> int:
        """Linear systems solved per forward (0 for polynomial filters): for profiling."""
        return 0


class PolynomialFilter(GraphFilter):
    """``Σ_terms coefficient · P_power(A) Z W_weight``: every filter of the paper's Table 1.

    ``basis="monomial"`` uses ``A^k``, ``"chebyshev"`` the Chebyshev polynomials ``T_k(A)``.
    Owns no parameters (the weights are the block's convs).
    """

    def __init__(self, terms: Sequence[FilterTerm], basis: Basis = "monomial") -> None:
        super().__init__()
        if basis not in ("monomial", "chebyshev"):
            raise InvalidValueError(f"basis must be 'monomial' or 'chebyshev', got {basis!r}")
        if not terms:
            raise ValueError("a graph filter needs at least one term")
        self.terms = tuple(terms)
        self.basis: Basis = basis
        self.weight_names = tuple(dict.fromkeys(t.weight for t in self.terms))

    def forward(self, op: GraphOperator, z: Tensor) -> dict[str, Tensor]:
        return apply_graph_filter(op, z, self.terms, basis=self.basis)

    def response(self, lam: Tensor, weights: Mapping[str, Tensor]) -> Tensor | None:
        values = polynomial_values(lam, max(t.power for t in self.terms), self.basis)
        out = None
        for term in self.terms:
            part = (term.coefficient * values[term.power])[:, None, None] * weights[term.weight]
            out = part if out is None else out + part
        return out

    def extra_repr(self) -> str:
        return f"terms={len(self.terms)}, basis={self.basis!r}"
