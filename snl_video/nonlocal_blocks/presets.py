"""The graph kinds of the paper's Table 1 (and its ablations) as presets over :class:`NonLocalBlock`.

A preset is a function ``preset(in_channels, inter_channels, **options)`` that returns the
block's constructor arguments: which affinity builder, which filter terms (or which
rational filter), which output norm. Its keyword arguments ARE the kind's options, with
their defaults, and its docstring is what ``snl-video nonlocal`` prints for the kind.
:data:`GRAPH_PRESETS` names them; :mod:`.registry` builds blocks from it.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from .affinity_builders import (
    AffinityBuilder,
    CompactGeneralizedAffinity,
    CrissCrossAffinityBuilder,
    DisentangledAffinity,
    EmbeddedGaussianAffinity,
    FactorizedAffinity,
    Impl,
)
from .checks import check_choice, check_positive_int, check_subsample, keyword_defaults
from .filters import POLYNOMIAL_OPTIONS, Basis, FilterTerm, chebyshev_terms
from .rational import ARMA_OPTIONS, CAYLEY_OPTIONS, CayleyOfficialFilter, arma_filter_factory, cayley_filter_factory
from ..errors import InvalidValueError

__all__ = ["BLOCK_LEVEL_OPTIONS", "GRAPH_PRESETS", "SNL_FILTERS", "SnlFilter"]

#: Options every graph kind has; they go to :class:`NonLocalBlock` itself, not the preset's spec.
BLOCK_LEVEL_OPTIONS = ("activation", "zero_init", "upcast")


# `subsample` (max-pooled φ and g, e.g. [1, 2, 2]) and `bias` (biased θ/φ/g convs) are what
# mmaction2's NonLocal3d(sub_sample=True) adds; with activation="none" (and scale for its
# use_scale) an nl / nl_dot block computes exactly that module (tested against a restatement).
_NO_SUBSAMPLE = [1, 1, 1]


def _nl(c, cs, *, scale: bool = False, subsample: list = _NO_SUBSAMPLE, bias: bool = False, activation="relu",
        zero_init=True, upcast=True):
    """Non-local, embedded Gaussian (Wang et al. 2018): A = softmax(θᵀφ); filter A Z W.
    subsample=[t, h, w] max-pools φ and g (the NL paper's [1, 2, 2]); bias: biased θ/φ/g."""
    return dict(affinity=EmbeddedGaussianAffinity(cs, scale=scale), terms=[FilterTerm(1, 1.0, "w2")],
                subsample=check_subsample(subsample), bias=bias)


def _nl_dot(c, cs, *, impl: Impl = "auto", subsample: list = _NO_SUBSAMPLE, bias: bool = False, activation="relu",
            zero_init=True, upcast=True):
    """Non-local, dot product: A = θᵀφ / N (N: key positions); filter A Z W. subsample
    max-pools φ and g; bias: biased θ/φ/g."""
    check_choice("impl", impl, ("auto", "dense", "linear"))
    return dict(affinity=FactorizedAffinity(cs, variant="dot", impl=impl), terms=[FilterTerm(1, 1.0, "w2")],
                subsample=check_subsample(subsample), bias=bias)


def _ns(c, cs, *, scale: bool = False, subsample: list = _NO_SUBSAMPLE, bias: bool = False, activation="relu",
        zero_init=True, upcast=True):
    """Non-local stage (Zhu et al. 2019): A = softmax(θᵀφ); filter Z W - A Z W (one W).
    subsample max-pools φ and g of the A Z term (Z W keeps full resolution)."""
    return dict(
        affinity=EmbeddedGaussianAffinity(cs, scale=scale),
        terms=[FilterTerm(0, 1.0, "w2"), FilterTerm(1, -1.0, "w2")],
        subsample=check_subsample(subsample), bias=bias,
    )


def _a2(c, cs, *, kernel: str = "relu", impl: Impl = "auto", activation="relu", zero_init=True, upcast=True):
    """Double attention (Chen et al. 2018): A = relu(θ)ᵀrelu(φ) unnormalised, as in the
    paper's code (kernel='relu'), or A²'s own softmax_c(θ)ᵀ softmax_N(φ) (kernel='softmax');
    filter A Z W."""
    check_choice("kernel", kernel, ("relu", "softmax"))
    check_choice("impl", impl, ("auto", "dense", "linear"))
    return dict(affinity=FactorizedAffinity(cs, variant=kernel, impl=impl), terms=[FilterTerm(1, 1.0, "w2")])


def _cgnl(
    c,
    cs,
    *,
    groups: int = 1,
    kernel: Literal["gaussian", "dot"] = "gaussian",
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
    check_positive_int("groups", groups)
    check_choice("kernel", kernel, ("gaussian", "dot"))
    check_positive_int("taylor_order", taylor_order)
    if cs % groups or c % groups:
        raise InvalidValueError(f"cgnl: groups={groups} must divide in_channels={c} and inter_channels={cs}")
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
    check_positive_int("recurrence", recurrence)
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
        subsample=check_subsample(subsample), bias=bias,
    )


SnlFilter = Literal["chebyshev", "cayley", "cayley_official", "arma"]

#: The filters of ``snl`` and the options each reads (declared beside each filter).
SNL_FILTERS: dict[str, tuple[str, ...]] = {
    "chebyshev": POLYNOMIAL_OPTIONS,
    "cayley": CAYLEY_OPTIONS,
    "cayley_official": (),
    "arma": ARMA_OPTIONS,
}


def _check_filter_options(filter: str, given: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Reject a filter-specific option set (away from its default) for a filter that ignores it."""
    for name, value in given.items():
        if name in SNL_FILTERS[filter] or value == defaults[name]:
            continue
        readers = tuple(f for f, options in SNL_FILTERS.items() if name in options)
        raise InvalidValueError(
            f"snl: option {name}={value!r} applies to filter {' / '.join(readers)}, not to "
            f"filter={filter!r}; remove it or choose one of those filters"
        )


def _snl(
    c,
    cs,
    *,
    order: int = 1,
    impl: Impl = "auto",
    basis: Basis = "monomial",
    filter: SnlFilter = "chebyshev",
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
    check_choice("filter", filter, tuple(SNL_FILTERS))
    check_positive_int("order", order)
    check_choice("impl", impl, ("auto", "dense", "linear"))
    check_choice("basis", basis, ("monomial", "chebyshev"))
    given = dict(
        order=order, basis=basis, zoom_init=zoom_init, solver=solver, jacobi_iters=jacobi_iters, stacks=stacks,
        layers=layers, shared_weights=shared_weights, activation_inner=activation_inner, feedback=feedback,
    )
    _check_filter_options(filter, given, keyword_defaults(_snl))
    spec: dict[str, Any] = dict(affinity=FactorizedAffinity(cs, variant="spectral", impl=impl))
    if filter == "chebyshev":
        spec.update(terms=chebyshev_terms(order), basis=basis)
    elif filter == "cayley":
        spec["graph_filter"] = cayley_filter_factory(
            order=order, zoom_init=zoom_init, solver=solver, jacobi_iters=jacobi_iters
        )
    elif filter == "cayley_official":
        spec["graph_filter"] = CayleyOfficialFilter
    else:
        spec["graph_filter"] = arma_filter_factory(
            solver=solver, stacks=stacks, layers=layers, shared_weights=shared_weights,
            activation_inner=activation_inner, feedback=feedback,
        )
    return spec


def _snl_a1(c, cs, *, impl: Impl = "auto", activation="relu", zero_init=True, upcast=True):
    """SNL_a1 (the SNL paper's ablation, ICCV Table 8): SNL's symmetric normalised
    affinity A = D^-1/2 ((M+Mᵀ)/2) D^-1/2 with NL's single term: filter A Z W2
    (parameters as NL). impl as snl."""
    check_choice("impl", impl, ("auto", "dense", "linear"))
    return dict(affinity=FactorizedAffinity(cs, variant="spectral", impl=impl), terms=[FilterTerm(1, 1.0, "w2")])


def _snl_a2(c, cs, *, scale: bool = False, subsample: list = _NO_SUBSAMPLE, bias: bool = False, activation="relu",
            zero_init=True, upcast=True):
    """SNL_a2 (the SNL paper's ablation, ICCV Table 8): NL's softmax affinity
    A = softmax_j(θ_i·φ_j) (scale: · C_s^-1/2) with SNL's full first-order filter
    Z W1 + A Z W2 (parameters as SNL). subsample max-pools φ and g of the A Z term."""
    return dict(affinity=EmbeddedGaussianAffinity(cs, scale=scale), terms=chebyshev_terms(1),
                subsample=check_subsample(subsample), bias=bias)


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
    check_choice("affinity", affinity, ("softmax", "spectral"))
    check_choice("impl", impl, ("auto", "dense", "linear"))
    if affinity == "softmax" and impl != "auto":
        raise InvalidValueError("gsnl: impl applies to affinity='spectral' only (the softmax affinity is always dense)")
    builder: AffinityBuilder = (
        EmbeddedGaussianAffinity(cs, scale=False)
        if affinity == "softmax"
        else FactorizedAffinity(cs, variant="spectral", impl=impl)
    )
    terms = [FilterTerm(0, 1.0, "w1"), FilterTerm(1, 1.0, "w2"), FilterTerm(1, 2.0, "w3"), FilterTerm(0, -1.0, "w3")]
    return dict(affinity=builder, terms=terms)


#: Graph kind name → preset. A new graph kind is a preset function plus one line here.
GRAPH_PRESETS: dict[str, Callable[..., dict[str, Any]]] = {
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
