"""SRB (spectral residual block): identity at init, parity with a restatement of the
released FFT/LO blocks written here, sizes, errors, parameter counts, LO orthogonality,
bf16 autocast and placement."""

from __future__ import annotations

import pytest
import torch

from snl_video.models import build_model
from snl_video.nonlocal_blocks import (
    attach_orthogonal_retraction,
    build_nonlocal,
    list_nonlocal_kinds,
    nonlocal_options,
)

VARIANTS = [
    {"transform": "fft"},
    {"transform": "fft", "temporal": "conv"},
    {"transform": "fft", "temporal": "fft3d"},
    {"transform": "fft", "spectrum_relu": True},
    {"transform": "fft", "temporal": "fft3d", "spectrum_relu": True},
    {"transform": "lo"},
    {"transform": "lo", "temporal": "conv"},
    {"transform": "lo", "spectrum_relu": True},
]
IDS = ["-".join(f"{k}={v}" for k, v in o.items()) for o in VARIANTS]


def make(c: int, options: dict, size: tuple[int, int] | None = None):
    bound = options.get("transform") == "lo" or options.get("spectrum_relu")
    return build_nonlocal("srb", c, **options, **({"spatial_size": size} if bound else {}))


def randomise(block, seed: int = 0):
    """Every parameter and BN statistic random (eval mode uses the running statistics)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name in ("source_P", "source_Q"):
                continue  # keep them orthogonal
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.5 if p.dim() > 1 else 1.0))
        block.bn.running_mean.copy_(torch.randn(block.bn.running_mean.shape, generator=g))
        block.bn.running_var.copy_(torch.rand(block.bn.running_var.shape, generator=g) + 0.5)
    return block.eval()


def test_srb_is_registered_with_its_options():
    assert "srb" in list_nonlocal_kinds() and "srb" in list_nonlocal_kinds("transform")
    assert "srb" not in list_nonlocal_kinds("graph")
    options = nonlocal_options("srb")
    assert options["transform"] == "fft" and options["temporal"] == "none"
    assert options["groups"] is None and options["spectrum_relu"] is False and options["spatial_size"] is None


@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("shape", [(2, 16, 1, 7, 7), (2, 16, 2, 7, 7), (2, 16, 4, 14, 14), (1, 16, 8, 7, 7), (2, 16, 7, 7)])
def test_identity_at_init_all_variants_and_shapes(options, mode, shape):
    block = make(16, options, size=shape[-2:])
    block.train(mode == "train")
    x = torch.randn(shape) * 3
    y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)
    # Not vacuous: with alpha = 1 the branch changes the output.
    with torch.no_grad():
        block.alpha.fill_(1.0)
    assert not torch.allclose(block(x), x, atol=1e-3)


def test_state_dict_names_are_the_released_ones():
    fft = build_nonlocal("srb", 8)
    assert {k.split(".")[0] for k in fft.state_dict()} == {"alpha", "conv_layer", "bn"}
    lo = build_nonlocal("srb", 8, transform="lo", spatial_size=(7, 5))
    assert {k.split(".")[0] for k in lo.state_dict()} == {"alpha", "conv_layer", "bn", "source_P", "source_Q"}
    assert lo.source_P.shape == (7, 7) and lo.source_Q.shape == (5, 5)
    assert {"relu.weight", "relu.bias"} <= set(build_nonlocal("srb", 8, spectrum_relu=True, spatial_size=(7, 7)).state_dict())
    assert fft.conv_layer.groups == 8 and lo.conv_layer.groups == 2  # the released defaults
    assert fft.conv_layer.bias is not None and lo.conv_layer.bias is not None


# --------------------------------------------------------------------------------------
# Independent restatements (numpy-style, explicit interleaving and per-group matrices).
# --------------------------------------------------------------------------------------


def grouped_1x1(conv, z):
    """z: (N, Cin, ...) -> (N, Cout, ...) with the conv's per-group matrices."""
    w = conv.weight.reshape(conv.weight.shape[0], -1)
    g = conv.groups
    out_g, in_g = w.shape[0] // g, w.shape[1]
    parts = [torch.einsum("oc,nc...->no...", w[i * out_g:(i + 1) * out_g], z[:, i * in_g:(i + 1) * in_g]) for i in range(g)]
    out = torch.cat(parts, dim=1)
    if conv.bias is not None:
        out = out + conv.bias.reshape(1, -1, *([1] * (z.dim() - 2)))
    return out


def bn_eval(bn, z):
    shape = (1, -1) + (1,) * (z.dim() - 2)
    return (z - bn.running_mean.reshape(shape)) / torch.sqrt(bn.running_var.reshape(shape) + bn.eps) * bn.weight.reshape(
        shape
    ) + bn.bias.reshape(shape)


def activation(block, z):
    if block.spectrum_relu:
        return torch.relu(z * block.relu.weight + block.relu.bias)
    return torch.relu(z)


def temporal_conv(block, z):
    """Depth-wise k×1×1 conv with zero padding, written as a sum over taps. z: (B, C, T, …)."""
    if block.temporal_conv is None:
        return z
    k = block.temporal_conv.weight.shape[2]
    pad = k // 2
    t = z.shape[2]
    out = torch.zeros_like(z)
    for tap in range(k):
        w = block.temporal_conv.weight[:, 0, tap, 0, 0].reshape(1, -1, 1, 1, 1)
        for frame in range(t):
            src = frame + tap - pad
            if 0 <= src < t:
                out[:, :, frame] += w[:, :, 0] * z[:, :, src]
    return out


def srb_fft_reference(block, x):
    """The released FFTBlock per frame: full complex fft2, keep W//2+1 columns, interleave
    [re, im] per channel by stacking, grouped conv, BN, ReLU, inverse with s=(H, W)."""
    b, c, t, h, w = x.shape
    wh = w // 2 + 1
    if block.temporal == "fft3d":
        spec = torch.fft.fftn(x, dim=(2, 3, 4))[..., :wh]
    else:
        spec = torch.fft.fft2(x)[..., :wh]  # unnormalised forward, per frame
    z = torch.stack([spec.real, spec.imag], dim=2).reshape(b, 2 * c, t, h, wh)  # c0.re, c0.im, c1.re, …
    z = grouped_1x1(block.conv_layer, z)
    z = temporal_conv(block, z)
    z = activation(block, bn_eval(block.bn, z))
    zc = torch.complex(z[:, 0::2], z[:, 1::2])
    if block.temporal == "fft3d":
        branch = torch.fft.irfftn(zc, s=(t, h, w), dim=(2, 3, 4))
    else:
        branch = torch.fft.irfft2(zc, s=(h, w))
    return x + block.alpha * branch


def srb_lo_reference(block, x):
    p, q = block.source_P, block.source_Q
    u = torch.einsum("ij,bctjk,kl->bctil", p, x, q)
    z = activation(block, bn_eval(block.bn, temporal_conv(block, grouped_1x1(block.conv_layer, u))))
    return x + block.alpha * torch.einsum("ji,bctjk,lk->bctil", p, z, q)


@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
@pytest.mark.parametrize("shape", [(2, 16, 4, 7, 7), (1, 16, 2, 14, 10)])
def test_forward_matches_restatement_of_the_released_block(options, shape):
    torch.manual_seed(0)
    block = randomise(make(16, options, size=shape[-2:]).double())
    x = torch.randn(shape, dtype=torch.float64)
    reference = srb_lo_reference if options["transform"] == "lo" else srb_fft_reference
    got = block(x)
    assert not torch.allclose(got, x)
    torch.testing.assert_close(got, reference(block, x), rtol=1e-9, atol=1e-9)


def test_2d_input_is_the_t1_case():
    block = randomise(build_nonlocal("srb", 16).double())
    x = torch.randn(2, 16, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(block(x), block(x.unsqueeze(2)).squeeze(2), rtol=0, atol=0)


def test_per_frame_fft_has_no_temporal_interaction_but_conv_and_fft3d_do():
    x = torch.randn(1, 16, 4, 7, 7, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, 3] += 1.0  # change the last frame only
    for options, mixes in [({}, False), ({"temporal": "conv"}, True), ({"temporal": "fft3d"}, True)]:
        block = randomise(build_nonlocal("srb", 16, **options).double())
        changed = (block(x) - block(x2))[:, :, 2].abs().max().item()  # a neighbour frame
        assert (changed > 1e-6) == mixes, (options, changed)


# --------------------------------------------------------------------------------------
# Parameter counts (reference §2.7).
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("c,options,size", [
    (256, {}, None),
    (1024, {}, None),
    (256, {"groups": 4, "spectrum_relu": True}, (16, 12)),
    (512, {"temporal": "conv", "temporal_kernel": 5}, None),
    (256, {"transform": "lo"}, (16, 12)),
    (1024, {"transform": "lo", "spectrum_relu": True}, (7, 7)),
])
def test_parameter_count_formula(c, options, size):
    block = build_nonlocal("srb", c, **options, **({"spatial_size": size} if size else {}))
    count = sum(p.numel() for p in block.parameters())
    if options.get("transform", "fft") == "fft":
        g = options.get("groups", 8)
        expected = 4 * c * c // g + 2 * c + 4 * c + 1  # conv, conv bias, BN(2C), alpha
        if options.get("spectrum_relu"):
            expected += 2 * size[0] * (size[1] // 2 + 1)
        if options.get("temporal") == "conv":
            expected += 2 * c * options.get("temporal_kernel", 3)
    else:
        g = options.get("groups", 2)
        h, w = size
        expected = h * h + w * w + c * c // g + c + 2 * c + 1
        if options.get("spectrum_relu"):
            expected += 2 * h * w
    assert count == expected
    if c == 256 and not options:
        assert count == 34_305  # the released FFTBlock at 256 channels (+ nothing)
    if c == 256 and options == {"transform": "lo"}:
        assert count == 33_936 + 1  # the released LOBlock, + our alpha


# --------------------------------------------------------------------------------------
# LO: orthogonality, sign stability, no write in forward.
# --------------------------------------------------------------------------------------


def test_lo_stays_orthogonal_without_sign_flips_over_200_steps():
    torch.manual_seed(0)
    block = build_nonlocal("srb", 8, transform="lo", spatial_size=(7, 6))
    with torch.no_grad():
        block.alpha.fill_(1.0)
    opt = torch.optim.SGD(block.parameters(), lr=0.05, momentum=0.9)
    handles = attach_orthogonal_retraction(block, opt)
    assert len(handles) == 1
    x = torch.randn(4, 8, 2, 7, 6)
    target = torch.randn_like(x)
    p0 = block.source_P.detach().clone()
    previous = (block.source_P.detach().clone(), block.source_Q.detach().clone())
    for _ in range(200):
        opt.zero_grad()
        ((block(x) - target) ** 2).mean().backward()
        opt.step()
        for m, old in zip((block.source_P, block.source_Q), previous):
            m = m.detach()
            eye = torch.eye(m.shape[0])
            assert torch.linalg.matrix_norm(m.T @ m - eye) < 1e-5
            # No column jumps to its negative: each column stays close to where it was.
            assert (m * old).sum(dim=0).min() > 0.5
        previous = (block.source_P.detach().clone(), block.source_Q.detach().clone())
    # Not vacuous: P moved.
    assert (block.source_P.detach() - p0).abs().max() > 1e-2


def test_lo_forward_does_not_write_its_matrices():
    block = build_nonlocal("srb", 8, transform="lo", spatial_size=(7, 7))
    with torch.no_grad():
        block.source_P.add_(0.01)  # no longer orthogonal
    before = block.source_P.detach().clone()
    block(torch.randn(2, 8, 2, 7, 7))
    assert torch.equal(block.source_P.detach(), before)
    block.retract_()
    assert not torch.equal(block.source_P.detach(), before)


# --------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------


def test_lo_rejects_another_size_naming_the_one_it_was_built_for():
    block = build_nonlocal("srb", 8, transform="lo", spatial_size=(7, 7))
    with pytest.raises(ValueError, match=r"built for 7x7 maps, got 14x14"):
        block(torch.randn(1, 8, 2, 14, 14))
    sr = build_nonlocal("srb", 8, spectrum_relu=True, spatial_size=(14, 14))
    with pytest.raises(ValueError, match=r"built for 14x14 maps, got 7x7"):
        sr(torch.randn(1, 8, 2, 7, 7))
    # The plain FFT block is size-agnostic.
    fft = build_nonlocal("srb", 8)
    for hw in [(7, 7), (14, 14), (9, 4)]:
        assert fft(torch.randn(1, 8, 2, *hw)).shape[-2:] == hw


def test_unbound_lo_is_a_clear_error():
    block = build_nonlocal("srb", 8, transform="lo")
    with pytest.raises(ValueError, match="spatial_size"):
        block(torch.randn(1, 8, 2, 7, 7))


@pytest.mark.parametrize("kwargs,match", [
    ({"inter_channels": 4}, "inter_channels"),
    ({"transform": "dct"}, "transform"),
    ({"temporal": "lstm"}, "temporal"),
    ({"transform": "lo", "temporal": "fft3d"}, "fft3d"),
    ({"groups": 3}, "groups=3"),
    ({"groups": 0}, "groups"),
    ({"temporal_kernel": 4}, "odd"),
    ({"spatial_size": (7,)}, "spatial_size"),
    ({"ratio": 2}, "valid options"),
])
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_nonlocal("srb", 16, **kwargs)


# --------------------------------------------------------------------------------------
# Mixed precision: the spectral branch is a float32 island.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
def test_bf16_autocast_is_finite_and_close_to_float32(options):
    torch.manual_seed(0)
    block = randomise(make(16, options, size=(7, 7)))
    x = torch.randn(2, 16, 4, 7, 7)
    want = block(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = block(x)
        got_bf16_input = block(x.bfloat16())  # a bf16 activation, as from a bf16 backbone conv
    assert got.dtype == torch.float32 and got_bf16_input.dtype == torch.bfloat16
    for out in (got, got_bf16_input):
        assert torch.isfinite(out).all()
        err = ((out.float() - want).norm() / want.norm()).item()
        assert err < 0.02, err


# --------------------------------------------------------------------------------------
# Placement.
# --------------------------------------------------------------------------------------


def test_one_spec_places_lo_blocks_in_stages_of_different_sizes():
    spec = {
        "kind": "srb",
        "options": {"transform": "lo", "spectrum_relu": True},
        "positions": {"layer2": [0], "layer3": [0]},
        "input_size": [4, 64, 64],
    }
    model = build_model("c2d_r50", num_classes=3, nonlocal_blocks=spec).eval()
    blocks = model.nonlocal_blocks
    assert blocks["layer2_after_0"].spatial_size == (8, 8)
    assert blocks["layer3_after_0"].spatial_size == (4, 4)
    assert blocks["layer2_after_0"].source_P.shape == (8, 8)
    assert blocks["layer3_after_0"].relu.weight.shape == (4, 4)
    clip = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        placed = model(clip)
        blocks, model.nonlocal_blocks = model.nonlocal_blocks, torch.nn.ModuleDict()
        without = model(clip)  # the same backbone, no blocks
        model.nonlocal_blocks = blocks
        assert torch.equal(placed, without)  # identity at insertion
        for block in model.nonlocal_blocks.values():
            block.alpha.fill_(1.0)
        assert not torch.allclose(model(clip), without)  # not vacuous
        with pytest.raises(ValueError, match="built for 8x8 maps, got 14x14"):
            model(torch.randn(1, 3, 4, 112, 112))


def test_placement_without_a_size_is_a_clear_error_and_inter_channels_is_rejected():
    with pytest.raises(ValueError, match="input_size"):
        build_model("r3d18", num_classes=3, nonlocal_blocks={"kind": "srb", "options": {"transform": "lo"}})
    with pytest.raises(ValueError, match="full width"):
        build_model("r3d18", num_classes=3, nonlocal_blocks={"kind": "srb", "inter_channels": 64})
