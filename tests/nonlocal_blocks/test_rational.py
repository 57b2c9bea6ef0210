"""The spectral family: SNL_a1/a2, gSNL and SNL's rational filters (Cayley, ARMA), each
against an independent dense formula (reference.py), dense = linear, exact solves, and the
linear path's O(N) memory."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from snl_video.nonlocal_blocks import build_nonlocal
from snl_video.nonlocal_blocks.affinity import LowRankAffinity
from snl_video.nonlocal_blocks.rational import SOLVE_CHUNK, batched_solve, solve_quadratic

from . import reference as ref
from .reference import assert_relatively_close, formula_forward, grads, input_with_isolated_nodes, mat, randomise

# Every filter of `snl` (and the new presets), options as built in the tests below.
FILTERS = {
    "chebyshev2": ("snl", {"order": 2}),
    "cayley1": ("snl", {"filter": "cayley"}),
    "cayley2": ("snl", {"filter": "cayley", "order": 2, "zoom_init": 0.7}),
    "cayley_jacobi": ("snl", {"filter": "cayley", "solver": "jacobi", "jacobi_iters": 5}),
    "cayley_official": ("snl", {"filter": "cayley_official"}),
    "arma": ("snl", {"filter": "arma", "stacks": 2, "layers": 2}),
    "arma_shared_diag": ("snl", {"filter": "arma", "layers": 3, "shared_weights": True, "feedback": "diagonal",
                                 "activation_inner": "none"}),
    "arma_exact": ("snl", {"filter": "arma", "stacks": 2, "solver": "exact", "feedback": "diagonal",
                           "activation_inner": "none"}),
    "snl_a1": ("snl_a1", {}),
    "gsnl_spectral": ("gsnl", {"affinity": "spectral"}),
}
SPECTRAL_AFFINITY = [name for name, (kind, _) in FILTERS.items() if kind in ("snl", "snl_a1", "gsnl")]


FORMULA_CASES = [
    ("snl_a1", {"impl": "dense"}),
    ("snl_a1", {"impl": "linear"}),
    ("snl_a2", {}),
    ("snl_a2", {"scale": True, "activation": "none"}),
    ("gsnl", {}),
    ("gsnl", {"affinity": "spectral", "impl": "linear", "activation": "relu"}),
    ("snl", {"filter": "cayley", "impl": "dense"}),
    ("snl", {"filter": "cayley", "impl": "linear"}),
    ("snl", {"filter": "cayley", "order": 3, "zoom_init": 2.0, "impl": "linear"}),
    ("snl", {"filter": "cayley_official", "impl": "dense"}),
    ("snl", {"filter": "cayley_official", "impl": "linear"}),
    ("snl", {"filter": "arma", "impl": "linear"}),
    ("snl", {"filter": "arma", "stacks": 3, "layers": 2, "impl": "dense"}),
    ("snl", {"filter": "arma", "layers": 3, "shared_weights": True, "impl": "linear"}),
    ("snl", {"filter": "arma", "feedback": "diagonal", "activation_inner": "none", "layers": 2, "impl": "linear"}),
    ("snl", {"filter": "arma", "solver": "exact", "feedback": "diagonal", "activation_inner": "none",
             "stacks": 2, "impl": "linear"}),
    ("snl", {"filter": "arma", "solver": "exact", "feedback": "diagonal", "activation_inner": "none",
             "impl": "dense"}),
]


@pytest.mark.parametrize("kind,options", FORMULA_CASES, ids=[f"{k}-{o}" for k, o in FORMULA_CASES])
def test_block_matches_dense_formula(kind, options):
    torch.manual_seed(0)
    block = randomise(build_nonlocal(kind, 12, inter_channels=6, **options).double())
    x = torch.randn(2, 12, 2, 3, 4, dtype=torch.float64)
    got = block(x)
    assert not torch.equal(got, x)
    torch.testing.assert_close(got, formula_forward(block, x), rtol=1e-10, atol=1e-10)


def test_gsnl_is_a_reparametrised_first_order_filter():
    block = randomise(build_nonlocal("gsnl", 12, inter_channels=6).double())
    plain = randomise(build_nonlocal("snl_a2", 12, inter_channels=6).double())
    with torch.no_grad():
        for name in ("theta", "phi", "g"):
            getattr(plain, name).weight.copy_(getattr(block, name).weight)
        plain.w1.weight.copy_(block.w1.weight - block.w3.weight)
        plain.w2.weight.copy_(block.w2.weight + 2 * block.w3.weight)
    plain.activation = "none"
    x = torch.randn(2, 12, 2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(block(x), plain(x), rtol=1e-10, atol=1e-10)


def test_parameters_as_in_the_paper():
    count = lambda b: sum(p.numel() for p in b.parameters())  # noqa: E731
    assert count(build_nonlocal("snl_a1", 1024)) == count(build_nonlocal("nl", 1024))
    assert count(build_nonlocal("snl_a2", 1024)) == count(build_nonlocal("snl", 1024))
    assert [n for n in build_nonlocal("snl_a1", 8).weight_names] == ["w2"]
    assert count(build_nonlocal("gsnl", 1024)) == count(build_nonlocal("snl", 1024)) + 512 * 1024
    cayley = build_nonlocal("snl", 1024, filter="cayley", order=2)
    assert count(cayley) == 3 * 1024 * 512 + 5 * 512 * 1024 + 2 * 1024 + 1  # w0, 2×(re, im), BN, zoom


def test_cayley_zoom_is_positive_and_starts_at_zoom_init():
    block = build_nonlocal("snl", 8, filter="cayley", zoom_init=0.3)
    assert abs(block.filter.zoom.item() - 0.3) < 1e-6
    with torch.no_grad():
        block.filter.raw_zoom.fill_(-50.0)
    assert block.filter.zoom.item() > 0


def test_cayley_order1_exact_equals_the_real_rational_form():
    torch.manual_seed(1)
    block = build_nonlocal("snl", 12, inter_channels=6, filter="cayley", zoom_init=1.3, impl="linear").double()
    x = torch.randn(2, 12, 2, 3, 4, dtype=torch.float64)
    op, z = block.filter_input(x)
    got = block.filter(op, z)
    u = sum(got[n] @ mat(getattr(block, n)).T for n in got)
    a = op.dense()
    want = ref.cayley_order1_real(a, z, block.filter.zoom.item(), mat(block.w0), mat(block.w1_re), mat(block.w1_im))
    torch.testing.assert_close(u, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", ["dense", "linear"])
def test_jacobi_converges_to_the_exact_solve_for_moderate_zoom(impl):
    torch.manual_seed(2)
    x = torch.randn(2, 12, 2, 4, 4, dtype=torch.float64)
    exact = build_nonlocal("snl", 12, inter_channels=6, filter="cayley", order=2, zoom_init=0.7, impl=impl).double()
    errors = []
    for iters in (2, 8, 60):
        jac = build_nonlocal("snl", 12, inter_channels=6, filter="cayley", order=2, zoom_init=0.7, impl=impl,
                             solver="jacobi", jacobi_iters=iters).double()
        jac.load_state_dict(exact.state_dict())
        op, z = exact.filter_input(x)
        want, got = exact.filter(op, z), jac.filter(op, z)
        errors.append(max((got[n] - want[n]).abs().max().item() for n in want))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-9, errors


def random_snl_graph(batch=2, nodes=40, rank=5, isolated=(0, 7), dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    left = torch.randn(batch, nodes, rank, generator=g, dtype=dtype)
    right = torch.randn(batch, nodes, rank, generator=g, dtype=dtype)
    for i in isolated:  # zero features: zero degree, zero row and column
        left[:, i] = 0
        right[:, i] = 0
    return LowRankAffinity(torch.relu(left), torch.relu(right), symmetrize=True, normalization="symmetric")


@pytest.mark.parametrize("per_channel", [False, True])
def test_woodbury_solves_equal_dense_solves_on_snl_graphs(per_channel):
    op = random_snl_graph()
    a = op.dense()
    assert torch.equal(a[:, 0], torch.zeros_like(a[:, 0]))  # an isolated node
    rhs = torch.randn(2, 40, 3, dtype=torch.float64)
    if per_channel:
        coeffs = [torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64), torch.tensor([-0.9, 0.5, 0.3], dtype=torch.float64),
                  torch.tensor([0.0, 0.7, 1.1], dtype=torch.float64)]
    else:
        coeffs = [2.0, -1.3, 0.8]
    got = solve_quadratic(op, coeffs, rhs)
    eye = torch.eye(40, dtype=torch.float64)
    for c in range(3):
        c0, c1, c2 = (float(k[c]) if torch.is_tensor(k) else k for k in coeffs)
        want = torch.linalg.solve(c0 * eye + c1 * a + c2 * a @ a, rhs[..., c:c + 1])
        torch.testing.assert_close(got[..., c:c + 1], want, rtol=1e-10, atol=1e-12)
    # The dense operator takes the dense path to the same answer.
    from snl_video.nonlocal_blocks import DenseAffinity

    torch.testing.assert_close(solve_quadratic(DenseAffinity(a), coeffs, rhs), got, rtol=1e-10, atol=1e-12)


def test_many_small_solves_at_the_real_size_work_in_chunks():
    # ARMA's exact solver at C_s = 128: one 256×256 system per channel, (1, 128, 256, 256)
    # in one call is what fails inside MKL on some CPU builds; batched_solve chunks it.
    g = torch.Generator().manual_seed(4)
    m = torch.randn(1, 128, 256, 256, generator=g) / 16 + torch.eye(256)
    b = torch.randn(1, 128, 256, 1, generator=g)
    x = batched_solve(m, b)
    assert x.shape == b.shape and SOLVE_CHUNK < 128
    for c in (0, 77, 127):
        torch.testing.assert_close(x[0, c], torch.linalg.solve(m[0, c], b[0, c]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("per_channel", [False, True])
def test_dense_solve_keeps_a_zero_quadratic_term_exact_and_exports(per_channel):
    # Whether the dense path forms A² is decided by the call's structure, not by a tensor's value
    # (a value test is the data-dependent branch torch.export refused): a tensor c2 that is zero
    # gives the very system without the term, and the solve traces with a dynamic batch.
    from snl_video.nonlocal_blocks import DenseAffinity

    a = random_snl_graph().dense()
    rhs = torch.randn(2, 40, 3, dtype=torch.float64)
    if per_channel:
        c0, c1 = torch.tensor([1.0, 2.0, 1.5], dtype=torch.float64), torch.tensor([-0.9, 0.5, 0.3], dtype=torch.float64)
        zero = torch.zeros(3, dtype=torch.float64)
    else:
        c0, c1, zero = 2.0, -1.3, torch.tensor(0.0, dtype=torch.float64)
    without = solve_quadratic(DenseAffinity(a), [c0, c1], rhs)
    torch.testing.assert_close(solve_quadratic(DenseAffinity(a), [c0, c1, zero], rhs), without, rtol=1e-12, atol=1e-14)
    eye = torch.eye(40, dtype=torch.float64)
    for c in range(3):
        k0, k1 = (float(k[c]) if torch.is_tensor(k) else k for k in (c0, c1))
        torch.testing.assert_close(without[..., c:c + 1], torch.linalg.solve(k0 * eye + k1 * a, rhs[..., c:c + 1]),
                                   rtol=1e-10, atol=1e-12)

    class Solve(torch.nn.Module):
        def forward(self, graph: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            c2 = torch.full_like(b[0, 0, 0], 0.25)  # a traced tensor coefficient, as Cayley's h²
            return solve_quadratic(DenseAffinity(graph), [1.5, -1.0, c2], b)

    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(Solve(), (a, rhs), dynamic_shapes=({0: batch}, {0: batch}), strict=False)
    big_a, big_b = a.repeat(10, 1, 1), rhs.repeat(10, 1, 1)  # 20 systems: more than SOLVE_CHUNK, one call exported
    torch.testing.assert_close(program.module()(big_a, big_b), Solve()(big_a, big_b), rtol=1e-10, atol=1e-12)


def test_arma_exact_is_the_limit_of_the_linear_recursion():
    torch.manual_seed(5)
    common = dict(filter="arma", feedback="diagonal", activation_inner="none", shared_weights=True, impl="linear")
    exact = build_nonlocal("snl", 12, inter_channels=6, solver="exact", **common).double()
    recursion = build_nonlocal("snl", 12, inter_channels=6, layers=200, **common).double()
    with torch.no_grad():
        exact.filter.feedback.uniform_(-1.0, 1.0)  # |w| ≤ tanh(1) = 0.76
    recursion.load_state_dict(exact.state_dict())
    x = torch.randn(2, 12, 2, 3, 4, dtype=torch.float64)
    op, z = exact.filter_input(x)
    torch.testing.assert_close(recursion.filter(op, z)["w_out"], exact.filter(op, z)["w_out"], rtol=1e-10, atol=1e-10)


def test_arma_exact_needs_a_linear_diagonal_recursion():
    with pytest.raises(ValueError, match="activation_inner='none' and feedback='diagonal'"):
        build_nonlocal("snl", 8, filter="arma", solver="exact")
    with pytest.raises(ValueError, match="layers"):
        build_nonlocal("snl", 8, filter="arma", solver="exact", feedback="diagonal", activation_inner="none", layers=3)
    with pytest.raises(ValueError, match="solver"):
        build_nonlocal("snl", 8, filter="cayley", solver="recursion")
    with pytest.raises(ValueError, match="zoom_init"):
        build_nonlocal("snl", 8, filter="arma", zoom_init=2.0)
    with pytest.raises(ValueError, match="filter"):
        build_nonlocal("snl", 8, filter="butterworth")
    with pytest.raises(ValueError, match="affinity"):
        build_nonlocal("gsnl", 8, affinity="dot")


@pytest.mark.parametrize("name", SPECTRAL_AFFINITY)
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_dense_and_linear_agree_on_outputs_and_gradients(name, dtype, rel):
    kind, options = FILTERS[name]
    torch.manual_seed(6)
    dense = randomise(build_nonlocal(kind, 16, inter_channels=8, impl="dense", **options).to(dtype)).train()
    linear = build_nonlocal(kind, 16, inter_channels=8, impl="linear", **options).to(dtype).train()
    linear.load_state_dict(dense.state_dict())
    x = input_with_isolated_nodes(dtype)
    out_d, gx_d, gp_d = grads(dense, x)
    out_l, gx_l, gp_l = grads(linear, x)

    def close(a, b, what):
        assert_relatively_close(a, b, rel, f"{name} {what}")

    assert torch.isfinite(out_d).all() and torch.isfinite(gx_d).all()
    close(out_l, out_d, "output")
    close(gx_l, gx_d, "input gradient")
    for pname in gp_d:
        assert gp_d[pname].abs().max() > 0, f"{name}: {pname} got no gradient"
        close(gp_l[pname], gp_d[pname], f"gradient of {pname}")


@pytest.mark.parametrize("name", SPECTRAL_AFFINITY)
def test_identity_at_init_and_bf16_autocast_finite(name):
    kind, options = FILTERS[name]
    block = build_nonlocal(kind, 16, inter_channels=8, **options)
    x = torch.randn(2, 16, 2, 6, 6) * 3
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.out_norm.weight.fill_(1.0)
    block.eval()
    want = block(x)
    xg = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = block(xg)
    got.float().mean().backward()
    assert torch.isfinite(got).all() and torch.isfinite(xg.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())
    assert ((got.float() - want).norm() / want.norm()).item() < 0.05


class SizeGuard(TorchDispatchMode):
    """Refuses any op (forward or backward) whose output has more than ``limit`` elements."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
                if t.numel() > self.limit:
                    raise MemoryError(f"{func} made a tensor of shape {tuple(t.shape)}")
        return out


def run_guarded(kind, options, shape, limit):
    block = build_nonlocal(kind, 16, inter_channels=8, **options)
    with torch.no_grad():
        block.out_norm.weight.fill_(1.0)
    x = torch.randn(1, 16, *shape, requires_grad=True)
    guard = SizeGuard(limit)
    with guard:
        block(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    return guard.largest


@pytest.mark.parametrize("name", [n for n in SPECTRAL_AFFINITY if n != "cayley_jacobi"] + ["cayley_jacobi"])
def test_linear_path_never_forms_an_n_by_n_tensor_at_25088_nodes(name):
    kind, options = FILTERS[name]
    nodes = 32 * 28 * 28  # 25,088: an N×N float32 matrix would be 2.5 GB
    largest = run_guarded(kind, {**options, "impl": "linear"}, (32, 28, 28), limit=64 * nodes)
    assert 16 * nodes <= largest <= 64 * nodes  # O(N·C) tensors only


def test_the_size_guard_does_catch_the_dense_path():
    with pytest.raises(MemoryError, match="shape"):
        run_guarded("snl", {"filter": "cayley", "impl": "dense"}, (4, 14, 14), limit=64 * 4 * 14 * 14)
