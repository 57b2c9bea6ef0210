"""Every non-local kind against an independent dense formula (tests/nonlocal_blocks/reference.py)."""

from __future__ import annotations

import pytest
import torch

from snl_video.nonlocal_blocks import build_nonlocal, list_nonlocal_kinds

from . import reference as ref
from .reference import formula_forward, randomise


def reference_step(block, x: torch.Tensor) -> torch.Tensor:
    """One residual step of ``block`` computed from the paper's formulas."""
    kind, opts = block.kind, block.options
    if kind in ("snl_a1", "snl_a2", "gsnl") or opts.get("filter", "chebyshev") != "chebyshev":
        return formula_forward(block, x)  # the spectral family's formulas
    b, c, t, h, w = x.shape
    xf = x.reshape(b, c, -1)
    th, ph, z = ref.project(block.theta, xf), ref.project(block.phi, xf), ref.project(block.g, xf)
    cs = th.shape[1]
    if kind == "snl":
        a = ref.snl_affinity(th, ph)
        az = z
        u = ref.project(block.w1, z)
        for k in range(1, opts.get("order", 1) + 1):
            az = torch.einsum("bij,bcj->bci", a, az)
            u = u + ref.project(getattr(block, f"w{k + 1}"), az)
    elif kind == "ns":
        a = ref.nl_affinity(th, ph)
        u = ref.project(block.w2, z) - ref.project(block.w2, torch.einsum("bij,bcj->bci", a, z))
    elif kind == "cgnl":
        groups = opts.get("groups", 1)
        az = ref.cgnl_apply(th, ph, z, groups, opts.get("taylor_order", 2), opts.get("gamma", 1e-4))
        u = ref.project_grouped(block.w2, az, groups)
    else:
        if kind == "nl":
            a = ref.nl_affinity(th, ph, cs**-0.5 if opts.get("scale") else 1.0)
        elif kind == "nl_dot":
            a = ref.nl_dot_affinity(th, ph)
        elif kind == "a2":
            a = ref.a2_softmax_affinity(th, ph) if opts.get("kernel") == "softmax" else ref.a2_relu_affinity(th, ph)
        elif kind == "cc":
            a = ref.cc_affinity(th, ph, (t, h, w))
        elif kind == "dnl":
            unary = ref.project(block.affinity.unary, xf)[:, 0]
            a = ref.dnl_affinity(th, ph, unary, cs**-0.5 if opts.get("scale", True) else 1.0, opts.get("temperature", 1.0))
        else:  # pragma: no cover
            raise AssertionError(kind)
        u = ref.project(block.w2, torch.einsum("bij,bcj->bci", a, z))
    if kind == "cgnl":
        out = ref.groupnorm(block.gn, u)  # CGNL: GroupNorm, no activation
    else:
        out = torch.relu(ref.batchnorm_eval(block.bn, u))
    return x + out.reshape(b, c, t, h, w)


def reference_forward(block, x):
    for _ in range(getattr(block, "recurrence", 1)):
        x = reference_step(block, x)
    return x


CASES = [
    ("nl", {}),
    ("nl", {"scale": True}),
    ("nl_dot", {"impl": "dense"}),
    ("nl_dot", {"impl": "linear"}),
    ("ns", {}),
    ("a2", {"impl": "dense"}),
    ("a2", {"impl": "linear"}),
    ("a2", {"kernel": "softmax"}),
    ("cgnl", {}),
    ("cgnl", {"groups": 2, "taylor_order": 3, "gamma": 1e-2}),
    ("cc", {}),
    ("cc", {"recurrence": 1}),
    ("dnl", {}),
    ("dnl", {"scale": False, "temperature": 0.5}),
    ("snl", {"impl": "dense"}),
    ("snl", {"impl": "linear"}),
    ("snl", {"order": 3, "impl": "linear"}),
    ("snl_a1", {}),
    ("snl_a2", {}),
    ("gsnl", {}),
]


def test_cases_cover_every_kind():
    assert {k for k, _ in CASES} == set(list_nonlocal_kinds("graph"))


@pytest.mark.parametrize("kind,options", CASES, ids=[f"{k}-{o}" for k, o in CASES])
def test_block_matches_dense_formula(kind, options):
    block = randomise(build_nonlocal(kind, 12, inter_channels=6, **options).double())
    x = torch.randn(2, 12, 3, 4, 5, dtype=torch.float64)
    got = block(x)
    want = reference_forward(block, x)
    assert not torch.equal(got, x), "the randomised block must not be the identity"
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", list_nonlocal_kinds("graph"))
def test_2d_input_is_the_t1_case(kind):
    block = randomise(build_nonlocal(kind, 8).double())
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    y = block(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, block(x.unsqueeze(2)).squeeze(2), rtol=0, atol=0)
    torch.testing.assert_close(y, reference_forward(block, x.unsqueeze(2)).squeeze(2), rtol=1e-10, atol=1e-10)


def test_cgnl_taylor_series_converges_to_the_simplified_gaussian():
    # With many Taylor terms, f(t, p) -> beta * exp(2 gamma t p): the kernel CGNL expands.
    block = build_nonlocal("cgnl", 4, inter_channels=4, taylor_order=20, gamma=0.05).double()
    x = torch.randn(1, 4, 2, 3, 3, dtype=torch.float64)
    op = block.graph_operator(x)
    th = op.theta.reshape(1, -1)
    ph = op.phi.reshape(1, -1)
    closed = torch.exp(torch.tensor(-0.1, dtype=torch.float64)) * torch.exp(0.1 * th[:, :, None] * ph[:, None, :])
    torch.testing.assert_close(op.dense(), closed, rtol=1e-9, atol=1e-12)


def test_ns_ties_its_weight():
    block = build_nonlocal("ns", 8)
    names = {k.split(".")[0] for k in block.state_dict()}
    assert names == {"theta", "phi", "g", "w2", "bn"}


@pytest.mark.parametrize(
    "kind,expected_weights", [("nl", ["w2"]), ("snl", ["w1", "w2"]), ("ns", ["w2"])]
)
def test_filter_weights_follow_table1(kind, expected_weights):
    assert list(build_nonlocal(kind, 8).weight_names) == expected_weights


@pytest.mark.parametrize("kind", list_nonlocal_kinds("graph"))
def test_parameter_count_formula(kind):
    c, cs = 1024, 512
    order_terms = {"snl": 2, "snl_a2": 2, "gsnl": 3}.get(kind, 1)
    expected = 3 * c * cs + order_terms * cs * c + 2 * c + (c if kind == "dnl" else 0)
    block = build_nonlocal(kind, c)
    assert sum(p.numel() for p in block.parameters()) == expected
    if kind == "snl":  # the paper's Table 7: +2.62 M for SNL, +2.10 M for NL/NS/A²/CGNL
        assert round(expected / 1e6, 2) == 2.62
    if kind in ("nl", "ns", "a2", "cgnl", "snl_a1"):
        assert round(expected / 1e6, 2) == 2.10
