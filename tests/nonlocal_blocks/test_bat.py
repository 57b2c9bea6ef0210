"""BAT (bilinear attentional transform): the einsum Kronecker form equals a dense
``torch.kron`` restatement of the released forward written here; parameter counts;
zero_init identity; size errors; inter_channels; bf16 autocast; placement."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from snl_video.models import build_model
from snl_video.nonlocal_blocks import build_nonlocal, list_nonlocal_kinds, nonlocal_options


def randomise(block, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in block.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.3 if p.dim() > 1 else 1.0))
        for name, buf in block.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
    return block.eval()


def seq(module, x):
    """conv → BN → ReLU of a released ``nn.Sequential`` (modules called as they are)."""
    return torch.relu(module[1](module[0](x)))


def bat_dense_reference(block, x):
    """The released BATBlock.forward with explicit H×H, W×W and T×T Kronecker matrices."""
    bt = block.batransform
    s, k, tk, ts = bt.s, bt.k, bt.tk, bt.ts
    xl = seq(block.conv1, x)
    n, c, t, h, w = xl.shape
    o = seq(bt.conv1, xl)
    rp = F.adaptive_max_pool3d(o, (t, s, 1))
    cp = F.adaptive_max_pool3d(o, (t, 1, s))
    p = torch.softmax(bt.conv_p(rp).view(n, k, s, s, t), dim=3)
    q = torch.softmax(bt.conv_q(cp).view(n, k, s, s, t), dim=2)
    y = torch.empty_like(xl)
    per = c // k
    for b in range(n):
        for ch in range(c):
            grp = ch // per
            for f in range(t):
                big_p = torch.kron(p[b, grp, :, :, f], torch.eye(h // s, dtype=x.dtype))
                big_q = torch.kron(q[b, grp, :, :, f], torch.eye(w // s, dtype=x.dtype))
                y[b, ch, f] = big_p @ xl[b, ch, f] @ big_q
    if tk > 0:
        tp = F.adaptive_avg_pool3d(o, (ts, 1, 1))
        tm = torch.softmax(bt.conv_t(tp).view(n, tk, ts, ts), dim=3)
        per_t = c // tk
        z = torch.empty_like(y)
        for b in range(n):
            for ch in range(c):
                big_t = torch.kron(tm[b, ch // per_t], torch.eye(t // ts, dtype=x.dtype))
                z[b, ch] = torch.einsum("ij,jhw->ihw", big_t, y[b, ch])
        y = z
    y = seq(bt.conv2, y)
    y = seq(block.conv2, y)
    return x + y  # Dropout3d is the identity in eval mode


def test_bat_is_registered_with_the_released_defaults():
    assert "bat" in list_nonlocal_kinds("transform")
    assert nonlocal_options("bat") == {"r": 2, "s": 7, "k": 8, "tk": 4, "ts": 4, "dropout": 0.2, "zero_init": False}


@pytest.mark.parametrize(
    "c,shape,options",
    [
        (32, (2, 32, 4, 7, 7), {}),
        (32, (1, 32, 8, 14, 14), {}),  # Kronecker with I_2 in space and time
        (32, (1, 32, 4, 14, 7), {"ts": 2, "k": 4, "tk": 2}),
        (32, (2, 32, 2, 14, 21), {"tk": 0}),  # 2D-BAT
        (16, (1, 16, 6, 8, 12), {"s": 4, "ts": 3, "k": 2, "tk": 1}),
    ],
)
def test_einsum_form_equals_dense_kron_form(c, shape, options):
    torch.manual_seed(0)
    block = randomise(build_nonlocal("bat", c, **options).double())
    x = torch.randn(shape, dtype=torch.float64)
    got = block(x)
    assert not torch.allclose(got, x)
    torch.testing.assert_close(got, bat_dense_reference(block, x), rtol=1e-10, atol=1e-10)


def test_matrices_are_stochastic_as_released():
    block = randomise(build_nonlocal("bat", 32))
    xl = torch.randn(2, 16, 4, 7, 7)
    p, q, tm = block.batransform.matrices(xl)
    assert p.shape == (2, 8, 4, 7, 7) and q.shape == (2, 8, 4, 7, 7) and tm.shape == (2, 4, 4, 4)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 8, 4, 7))  # rows of P
    torch.testing.assert_close(q.sum(-2), torch.ones(2, 8, 4, 7))  # columns of Q
    torch.testing.assert_close(tm.sum(-1), torch.ones(2, 4, 4))  # rows of the temporal matrix


def test_parameter_count_of_the_paper_block():
    c, k, s, tk, ts = 1024, 8, 7, 4, 4
    cp = c // 2
    block = build_nonlocal("bat", c, k=k, s=s, tk=tk, ts=ts)
    count = sum(p.numel() for p in block.parameters())
    expected = (
        (c * cp + cp) + 2 * cp  # conv1 + BN
        + (cp * k + k) + 2 * k  # transform conv1 + BN
        + 2 * (k * s * s * k * s + s * s * k)  # conv_p, conv_q
        + (k * ts * ts * tk * ts + ts * ts * tk)  # conv_t
        + (cp * cp + cp) + 2 * cp  # transform conv2 + BN
        + (cp * c + c) + 2 * c  # conv2 + BN
    )
    assert count == expected == 1_367_784
    # The reference's leading-order formula 5/4 C² + ½ C k + 2 k² s³ + k tk ts³ (no biases/BN).
    assert 5 * c * c // 4 + c * k // 2 + 2 * k * k * s**3 + k * tk * ts**3 == 1_360_768
    assert sum(p.numel() for p in build_nonlocal("bat", c, tk=0).parameters()) == count - (k * ts**3 * tk + ts * ts * tk)


def test_inter_channels_replaces_c_over_r():
    block = build_nonlocal("bat", 64, inter_channels=16)
    assert block.conv1[0].out_channels == 16 and block.batransform.conv2[0].in_channels == 16
    assert build_nonlocal("bat", 64, r=4).conv1[0].out_channels == 16
    with pytest.raises(ValueError, match="k=8 groups must divide"):
        build_nonlocal("bat", 64, inter_channels=12)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize(
    "shape,options",
    [
        ((2, 32, 1, 7, 7), {"ts": 1}),
        ((2, 32, 2, 7, 7), {"ts": 2}),
        ((2, 32, 4, 14, 14), {}),
        ((1, 32, 8, 7, 7), {}),
        ((1, 32, 8, 14, 14), {"tk": 0}),
        ((2, 32, 7, 7), {"tk": 0}),
    ],
)
def test_zero_init_is_the_identity_and_shapes(shape, options, mode):
    block = build_nonlocal("bat", 32, zero_init=True, **options)
    block.train(mode == "train")
    x = torch.randn(shape) * 3
    y = block(x)
    assert y.shape == x.shape and torch.equal(y, x)
    released = build_nonlocal("bat", 32, **options).train(mode == "train")
    assert not torch.allclose(released(x), x)  # as released: not the identity at init


def test_zero_init_block_leaves_the_identity_after_one_step():
    torch.manual_seed(0)
    block = build_nonlocal("bat", 32, zero_init=True, dropout=0.0)
    x = torch.randn(2, 32, 4, 7, 7)
    opt = torch.optim.SGD(block.parameters(), lr=0.5)
    ((block(x) - torch.randn_like(x)) ** 2).mean().backward()
    assert block.conv2[1].weight.grad.abs().sum() > 0 and block.conv2[1].bias.grad.abs().sum() > 0
    opt.step()
    assert not torch.allclose(block.eval()(x), x)


@pytest.mark.parametrize(
    "shape,options,match",
    [
        ((1, 32, 4, 4, 4), {}, r"4x4x4 .*s=7 .*multiples of s"),
        ((1, 32, 4, 9, 9), {}, r"4x9x9 .*e\.g\. s=9"),
        ((1, 32, 4, 14, 10), {}, r"4x14x10 .*s=2"),
        ((1, 32, 2, 7, 7), {}, r"2x7x7 .*ts=4 .*e\.g\. ts=2"),
        ((1, 32, 6, 7, 7), {}, r"ts=4 .*divisor of 6"),
        ((1, 32, 7, 7), {}, r"1x7x7 .*ts=4"),
    ],
)
def test_size_errors_name_the_map_and_the_option(shape, options, match):
    block = build_nonlocal("bat", 32, **options)
    with pytest.raises(ValueError, match=match):
        block(torch.randn(shape))


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 3}, "k=3 groups"),
    ({"tk": 5}, "tk=5 groups"),
    ({"r": 3}, "r=3"),
    ({"s": 0}, "s must"),
    ({"dropout": 1.0}, "dropout"),
    ({"zero_init": 1}, "zero_init"),
    ({"groups": 2}, "valid options"),
])
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_nonlocal("bat", 32, **kwargs)


def test_bf16_autocast_is_finite_close_and_softmaxes_in_float32():
    torch.manual_seed(0)
    block = randomise(build_nonlocal("bat", 32))
    x = torch.randn(2, 32, 4, 7, 7)
    want = block(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = block(x)
        p, q, tm = block.batransform.matrices(torch.randn(2, 16, 4, 7, 7))
    assert p.dtype == q.dtype == tm.dtype == torch.float32
    assert torch.isfinite(got).all()
    err = ((got.float() - want).norm() / want.norm()).item()
    assert err < 0.03, err


def test_placement_checks_sizes_per_position_and_zero_init_inserts_as_identity():
    # Hara's r3d at 16x112²: res4 maps are 2x7x7, so ts=4 must be refused there, naming the position.
    with pytest.raises(ValueError, match=r"layer3_after_0 \(map 2x7x7 .*ts=2"):
        build_model("r3d18", num_classes=3, nonlocal_blocks={"kind": "bat", "input_size": [16, 112, 112]})
    spec = {
        "kind": "bat",
        "options": {"ts": 2, "s": 2, "zero_init": True},
        "positions": {"layer2": [1], "layer3": [1]},
        "input_size": [4, 64, 64],
    }
    model = build_model("c2d_r50", num_classes=3, nonlocal_blocks=spec).eval()
    clip = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        placed = model(clip)
        blocks, model.nonlocal_blocks = model.nonlocal_blocks, torch.nn.ModuleDict()
        without = model(clip)  # the same backbone, no blocks
        model.nonlocal_blocks = blocks
        assert torch.equal(placed, without)
        for block in model.nonlocal_blocks.values():
            block.conv2[1].weight.fill_(1.0)
        assert not torch.allclose(model(clip), without)
