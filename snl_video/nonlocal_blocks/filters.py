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
from typing import Literal, Sequence

from torch import Tensor

from .affinity import GraphOperator

__all__ = ["FilterTerm", "apply_graph_filter", "chebyshev_terms"]

Basis = Literal["monomial", "chebyshev"]


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
        raise ValueError(f"order must be >= 1, got {order}")
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
        raise ValueError(f"basis must be 'monomial' or 'chebyshev', got {basis!r}")
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
