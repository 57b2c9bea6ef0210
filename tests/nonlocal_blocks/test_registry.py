"""The public contract of every block: identity at init, learnable, half precision, errors."""

from __future__ import annotations

import pytest
import torch

from snl_video.nonlocal_blocks import build_nonlocal, list_nonlocal_kinds, nonlocal_options

KIND_OPTIONS = [(k, {}) for k in list_nonlocal_kinds("graph")] + [
    ("snl", {"impl": "linear", "order": 2}),
    ("snl", {"impl": "dense"}),
    ("cgnl", {"groups": 4, "kernel": "dot"}),
    ("a2", {"kernel": "softmax"}),
    ("snl", {"filter": "cayley", "order": 2}),
    ("snl", {"filter": "cayley", "solver": "jacobi"}),
    ("snl", {"filter": "cayley_official"}),
    ("snl", {"filter": "arma", "stacks": 2, "layers": 2}),
    ("snl", {"filter": "arma", "solver": "exact", "feedback": "diagonal", "activation_inner": "none"}),
    ("gsnl", {"affinity": "spectral"}),
]
IDS = [f"{k}-{o}" if o else k for k, o in KIND_OPTIONS]


@pytest.mark.parametrize("kind,options", KIND_OPTIONS, ids=IDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_identity_at_init(kind, options, mode):
    block = build_nonlocal(kind, 16, **options)
    block.train(mode == "train")
    for shape in [(2, 16, 4, 5, 6), (2, 16, 5, 6)]:
        x = torch.randn(shape) * 3
        assert torch.equal(block(x), x), f"{kind} is not the identity at init for input {shape}"


@pytest.mark.parametrize("kind,options", KIND_OPTIONS, ids=IDS)
def test_block_leaves_the_identity_after_one_step(kind, options):
    # The output norm starts at zero in front of a ReLU: with relu'(0) = 0 its gradient
    # would be zero forever and the block could never learn. One SGD step must move it.
    block = build_nonlocal(kind, 16, **options)
    x = torch.randn(4, 16, 3, 4, 4)
    target = torch.randn_like(x)
    opt = torch.optim.SGD(block.parameters(), lr=0.5)
    loss = ((block(x) - target) ** 2).mean()
    loss.backward()
    assert block.out_norm.weight.grad.abs().sum() > 0
    assert block.out_norm.bias.grad.abs().sum() > 0
    opt.step()
    block.eval()
    assert not torch.allclose(block(x), x)
    opt.zero_grad()
    # After the first step every parameter receives gradient.
    block.train()
    ((block(x) - target) ** 2).mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{kind}: {name} gets no gradient"


@pytest.mark.parametrize("kind", list_nonlocal_kinds("graph"))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_is_finite_and_close_to_float32(kind, dtype):
    block = build_nonlocal(kind, 32)
    with torch.no_grad():
        block.out_norm.weight.fill_(1.0)
    block.eval()
    # Large activations: θᵀφ and the degrees would overflow float16 (max 65,504) if the
    # graph part ran in half precision. With logits this large the softmaxes are near
    # one-hot, so only finiteness is asked here.
    x = torch.randn(2, 32, 4, 7, 7) * 30
    with torch.autocast("cpu", dtype=dtype):
        got = block(x)
    assert torch.isfinite(got).all()
    # At ordinary activation scales: finite gradients (loss scaling aside, gradients of
    # unnormalised affinities at huge activations overflow float16 by nature), and the
    # half-precision result stays close to float32.
    x = torch.randn(2, 32, 4, 7, 7).requires_grad_(True)
    want = block(x)
    with torch.autocast("cpu", dtype=dtype):
        got = block(x)
    got.float().mean().backward()  # a mean loss, as in training
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())
    err = ((got.float() - want).norm() / want.norm()).item()
    tolerance = 0.05 if dtype == torch.bfloat16 else 0.01  # 8 vs 11 mantissa bits
    assert err < tolerance, f"{kind} under {dtype} autocast: relative error {err:.3f}"


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        build_nonlocal("snl2", 16)
    message = str(info.value)
    assert "snl2" in message
    for kind in list_nonlocal_kinds():
        assert kind in message


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        build_nonlocal("snl", 16, ordre=2)
    message = str(info.value)
    assert "ordre" in message
    for option in nonlocal_options("snl"):
        assert option in message
    with pytest.raises(ValueError, match="recurrence"):
        build_nonlocal("nl", 16, recurrence=2)  # a cc option is not an nl option


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"in_channels": 0}, "in_channels"),
        ({"in_channels": -4}, "in_channels"),
        ({"in_channels": 16.0}, "in_channels"),
        ({"in_channels": 16, "inter_channels": 0}, "inter_channels"),
        ({"in_channels": 16, "impl": "fast"}, "impl"),
        ({"in_channels": 16, "order": 0}, "order"),
        ({"in_channels": 16, "basis": "legendre"}, "basis"),
        ({"in_channels": 16, "activation": "gelu"}, "activation"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    kwargs = dict(kwargs)
    c = kwargs.pop("in_channels")
    with pytest.raises(ValueError, match=match):
        build_nonlocal("snl", c, **kwargs)


def test_cgnl_groups_must_divide_channels():
    with pytest.raises(ValueError, match="groups"):
        build_nonlocal("cgnl", 12, inter_channels=6, groups=4)


@pytest.mark.parametrize("shape", [(2, 8, 4, 4, 4), (2, 16), (16, 4, 4), (2, 16, 1, 2, 3, 4)])
def test_bad_input_shapes_are_clear_errors(shape):
    block = build_nonlocal("snl", 16)
    with pytest.raises(ValueError, match=r"(B, C, T, H, W)|built for 16 channels"):
        block(torch.randn(shape))


def test_wrong_channel_count_names_both():
    block = build_nonlocal("nl", 16)
    with pytest.raises(ValueError) as info:
        block(torch.randn(1, 8, 2, 3, 3))
    assert "16" in str(info.value) and "8" in str(info.value)


def test_default_inter_channels_is_half():
    assert build_nonlocal("snl", 1024).inter_channels == 512
    assert build_nonlocal("snl", 1024, inter_channels=256).theta.out_channels == 256
