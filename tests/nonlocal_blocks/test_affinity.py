"""The spectral non-local block: dense vs linear-time equality and the affinity's spectrum."""

from __future__ import annotations

import pytest
import torch

from snl_video.nonlocal_blocks import (
    AUTO_LINEAR_NODES_PER_CHANNEL,
    build_nonlocal,
    resolve_impl,
)

from . import reference as ref
from .reference import assert_relatively_close, grads, input_with_isolated_nodes, randomise


def snl_pair(dtype, order=1, channels=16, inter=8):
    dense = build_nonlocal("snl", channels, inter_channels=inter, impl="dense", order=order).to(dtype)
    linear = build_nonlocal("snl", channels, inter_channels=inter, impl="linear", order=order).to(dtype)
    randomise(dense).train()
    linear.load_state_dict(dense.state_dict())
    linear.train()
    return dense, linear


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_dense_and_linear_agree_on_outputs_and_gradients(dtype, rel, order):
    dense, linear = snl_pair(dtype, order=order)
    x = input_with_isolated_nodes(dtype)
    out_d, gx_d, gp_d = grads(dense, x)
    out_l, gx_l, gp_l = grads(linear, x)

    def close(a, b, what):
        assert_relatively_close(a, b, rel, what)

    close(out_l, out_d, "output")
    close(gx_l, gx_d, "input gradient")
    assert set(gp_d) == set(gp_l)
    for name in gp_d:
        assert gp_d[name].abs().max() > 0, f"{name} got no gradient"
        close(gp_l[name], gp_d[name], f"gradient of {name}")
    assert torch.isfinite(gx_d).all() and torch.isfinite(gx_l).all()


def test_zero_degree_rows_stay_zero_as_in_the_official_code():
    block = build_nonlocal("snl", 16, inter_channels=8, impl="dense").double()
    x = input_with_isolated_nodes(torch.float64)
    a = block.graph_operator(x).dense()
    assert torch.isfinite(a).all()
    assert torch.equal(a[0, 0], torch.zeros_like(a[0, 0])) and torch.equal(a[0, :, 0], torch.zeros_like(a[0, 0]))
    xf = x.reshape(2, 16, -1)
    want = ref.snl_affinity(ref.project(block.theta, xf), ref.project(block.phi, xf))
    torch.testing.assert_close(a, want, rtol=1e-12, atol=1e-14)
    linear = block.affinity.__class__(8, variant="spectral", impl="linear")
    theta = ref.project(block.theta, xf).transpose(1, 2)
    phi = ref.project(block.phi, xf).transpose(1, 2)
    torch.testing.assert_close(linear(theta, phi, x=x, shape=(3, 5, 4)).dense(), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("impl", ["dense", "linear"])
def test_affinity_is_symmetric_with_spectrum_in_unit_interval(impl):
    block = build_nonlocal("snl", 16, inter_channels=8, impl=impl).double()
    x = input_with_isolated_nodes(torch.float64)
    a = block.graph_operator(x).dense()
    torch.testing.assert_close(a, a.transpose(1, 2), rtol=0, atol=1e-14)
    eig = torch.linalg.eigvalsh(a)
    assert eig.min() >= -1 - 1e-10 and eig.max() <= 1 + 1e-10
    # D^-1/2 M D^-1/2 of a connected non-negative graph has the top eigenvalue exactly 1.
    assert abs(eig.max().item() - 1.0) < 1e-10


def test_linear_path_never_forms_an_n_by_n_tensor():
    # N = 8*28*28 = 6,272 nodes: an N×N float32 matrix would be 150 MB; saved tensors must be O(N·C_s).
    from snl_video.benchmarking import saved_tensor_bytes

    block = build_nonlocal("snl", 16, inter_channels=8, impl="linear")
    x = torch.randn(1, 16, 8, 28, 28, requires_grad=True)
    nodes = 8 * 28 * 28
    saved = saved_tensor_bytes(lambda: block(x))
    assert saved < 64 * nodes * 4 * 16, saved  # a few dozen (N × C) tensors at most
    dense_saved = saved_tensor_bytes(lambda: build_nonlocal("snl", 16, inter_channels=8, impl="dense")(x))
    assert dense_saved > nodes * nodes * 4  # the dense path does keep N×N matrices


@pytest.mark.parametrize("basis", ["monomial", "chebyshev"])
def test_order_k_filter_matches_its_formula(basis):
    block = randomise(build_nonlocal("snl", 12, inter_channels=6, order=3, basis=basis).double())
    x = torch.randn(2, 12, 2, 3, 4, dtype=torch.float64)
    xf = x.reshape(2, 12, -1)
    th, ph, z = (ref.project(getattr(block, n), xf) for n in ("theta", "phi", "g"))
    a = ref.snl_affinity(th, ph)
    eye = torch.eye(a.shape[1], dtype=a.dtype).expand_as(a)
    if basis == "monomial":
        polys = [eye, a, a @ a, a @ a @ a]
    else:  # Chebyshev polynomials of the first kind: 1, x, 2x²-1, 4x³-3x
        polys = [eye, a, 2 * a @ a - eye, 4 * a @ a @ a - 3 * a]
    u = sum(ref.project(getattr(block, f"w{k + 1}"), torch.einsum("bij,bcj->bci", p, z)) for k, p in enumerate(polys))
    want = x + torch.relu(ref.batchnorm_eval(block.bn, u)).reshape(x.shape)
    torch.testing.assert_close(block(x), want, rtol=1e-10, atol=1e-10)
    assert sorted(n for n, _ in block.named_children() if n.startswith("w")) == ["w1", "w2", "w3", "w4"]


def test_auto_impl_picks_dense_for_small_maps_and_linear_for_large():
    assert resolve_impl("auto", 98, 512) == "dense"  # the paper's res4 map
    assert resolve_impl("auto", 6272, 128) == "linear"
    threshold = int(AUTO_LINEAR_NODES_PER_CHANNEL * 64)
    assert resolve_impl("auto", threshold - 1, 64) == "dense"
    assert resolve_impl("auto", threshold, 64) == "linear"
    for impl in ("dense", "linear"):
        assert resolve_impl(impl, 10, 1000) == impl
    block = build_nonlocal("snl", 16, inter_channels=8)
    small = torch.randn(1, 16, 1, 2, 3)  # 6 nodes < 16
    large = torch.randn(1, 16, 2, 4, 4)  # 32 nodes >= 16
    from snl_video.nonlocal_blocks import DenseAffinity, LowRankAffinity

    assert isinstance(block.graph_operator(small), DenseAffinity)
    assert isinstance(block.graph_operator(large), LowRankAffinity)


@pytest.mark.parametrize("kind,options", [("nl", {}), ("ns", {}), ("a2", {"kernel": "softmax"}), ("cc", {}), ("dnl", {})])
def test_random_walk_affinities_are_row_stochastic(kind, options):
    block = build_nonlocal(kind, 16, **options).double()
    a = block.graph_operator(torch.randn(2, 16, 3, 4, 5, dtype=torch.float64)).dense()
    assert (a >= 0).all()
    rows = 2.0 if kind == "dnl" else 1.0  # DNL: pairwise + unary, each row-stochastic
    torch.testing.assert_close(a.sum(dim=2), torch.full(a.shape[:2], rows, dtype=a.dtype), rtol=1e-12, atol=1e-12)
