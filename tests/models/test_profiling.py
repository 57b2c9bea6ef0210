"""Profiling: the paper's Table 7 complexity columns, the counter's convention, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from snl_video.cli import main
from snl_video.models import build_model, profile_model

TABLE7_CLIP = (1, 3, 16, 112, 112)


@pytest.fixture(scope="module")
def table7():
    return {
        kind: profile_model(build_model("r3d50", num_classes=400, nonlocal_blocks=kind), input_shape=TABLE7_CLIP)
        for kind in (None, "snl", "nl")
    }


def test_table7_backbone(table7):
    base = table7[None]
    assert round(base.params / 1e6, 2) == 47.02
    assert round(base.macs_table7 / 1e9, 2) == 10.10
    # The counter's own convention (no BN) is 10.07 G: the 0.03 G gap is 2 x BN elements.
    assert round(base.macs / 1e9, 2) == 10.07
    assert base.macs_table7 - (base.macs_by_op["convolution"] + base.macs_by_op["addmm"]) == 2 * base.norm_elements


@pytest.mark.parametrize("kind, params_m, macs_g", [("snl", 2.62, 0.26), ("nl", 2.10, 0.21)])
def test_table7_nonlocal_increments(table7, kind, params_m, macs_g):
    base, placed = table7[None], table7[kind]
    assert round((placed.params - base.params) / 1e6, 2) == params_m
    assert placed.params - base.params == placed.params_nonlocal
    assert round(placed.macs_nonlocal_table7 / 1e9, 2) == macs_g
    assert placed.macs_table7 - base.macs_table7 == placed.macs_nonlocal_table7
    # The counter also sees the affinity products (bmm), which Table 7 leaves out.
    assert placed.macs - base.macs == placed.macs_nonlocal
    # (Table 7's count has the block's output BN, 2 x 1024 x 2x7x7 elements, instead.)
    nodes = 2 * 7 * 7
    assert placed.macs_nonlocal == placed.macs_nonlocal_table7 - 2 * 1024 * nodes + placed.macs_by_op["bmm"]
    # NL's products are exactly θᵀφ and A·Z: 2·N²·C_s; SNL's dense path adds small O(N·C_s) terms.
    if kind == "nl":
        assert placed.macs_by_op["bmm"] == 2 * nodes * nodes * 512
    else:
        assert 0 <= placed.macs_by_op["bmm"] - 2 * nodes * nodes * 512 < nodes * 512 * 8


def test_counter_matches_an_independent_count_of_conv_and_linear_macs():
    """MACs of every conv/linear from its output size and kernel (forward hooks) equal the
    counter's count: its convention is 2 FLOPs per multiply-add, and we halve it."""
    model = build_model("i3d_r50", num_classes=11).eval()
    expected = 0

    def hook(module, inputs, output):
        nonlocal expected
        if isinstance(module, nn.Conv3d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.kernel_size[2]
            expected += output.numel() * module.in_channels // module.groups * k
        else:
            expected += output.numel() * module.in_features

    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.Linear)):
            m.register_forward_hook(hook)
    profile = profile_model(model, input_shape=(1, 3, 8, 64, 64))
    assert profile.macs == expected
    assert profile.params == sum(p.numel() for p in model.parameters())


def test_cli_profile_json_last_line(capsys):
    assert main(["profile", "--model", "r3d18", "--num-classes", "5", "--frames", "8", "--size", "64",
                 "--nonlocal", "snl", "--json"]) == 0  # fmt: skip
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    model = build_model("r3d18", num_classes=5, nonlocal_blocks="snl")
    assert result["params"] == sum(p.numel() for p in model.parameters())
    assert isinstance(result["macs"], int) and result["macs"] > result["macs_nonlocal"] > 0
    assert result["nonlocal_keys"] == ["layer3_after_0"]


def test_cli_profile_accepts_a_json_placement(capsys):
    spec = '{"kind": "nl", "positions": {"res3": [1, 3], "res4": [1, 3, 5]}}'
    assert main(["profile", "--model", "c2d_r50", "--frames", "8", "--size", "64", "--nonlocal", spec, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["nonlocal_keys"]) == 5


def test_cli_profile_errors_are_one_line(capsys):
    assert main(["profile", "--model", "r3d51"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'r3d51'; valid models:" in err and "Traceback" not in err
    assert main(["profile", "--model", "r3d50", "--nonlocal", '{"kind": "nl", "positions": {"layer3": [9]}}']) == 2
    assert "position 9 is out of range for layer3" in capsys.readouterr().err


def test_rational_filter_solves_are_counted_on_their_own_line():
    # Cayley order 2, exact, on the linear path: per forward two r×r Woodbury systems
    # (r = 2·C_s) with 2·C_s right-hand sides (real and imaginary parts).
    model = build_model("r3d10", num_classes=5, nonlocal_blocks={
        "kind": "snl", "options": {"filter": "cayley", "order": 2, "impl": "linear"}, "positions": {"layer3": [0]}})
    profile = profile_model(model, input_shape=(1, 3, 8, 64, 64))
    r, k = 2 * 128, 2 * 128
    assert profile.macs_solves == profile.macs_nonlocal_solves == 2 * (r**3 // 3 + r * r * k)
    plain = profile_model(build_model("r3d10", num_classes=5, nonlocal_blocks={
        "kind": "snl", "options": {"impl": "linear"}, "positions": {"layer3": [0]}}), input_shape=(1, 3, 8, 64, 64))
    assert plain.macs_solves == 0
    # Table 7 counts the projections only: w0 + 2 × (re, im) = 5 convs C_s → C vs SNL's 2.
    n = 1 * 4 * 4
    assert profile.macs_nonlocal_table7 - plain.macs_nonlocal_table7 == 3 * n * 128 * 256

def test_ffc_profile_counts_the_paper_parameters_and_keeps_ffts_apart(capsys):
    """ffc_c2d_r50 at α = 0.25, no LFU, 400 classes: 24.87 M (FFC paper, FFC-C2D: 24.9 M). The
    FFTs are not in the MACs (the counter has no formula for them) and are estimated apart."""
    import math

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from snl_video.models.ffc import FourierUnit

    assert main(["profile", "--model", "ffc_c2d_r50", "--frames", "2", "--size", "64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert round(result["params"] / 1e6, 2) == 24.87
    model = build_model("ffc_c2d_r50", num_classes=400).eval()
    plain = FlopCounterMode(display=False)
    with plain, torch.no_grad():
        model(torch.zeros(1, 3, 2, 64, 64))
    assert result["macs"] == plain.get_total_flops() // 2
    # Independent FFT estimate: every Fourier unit runs one rfft and one irfft of N = H·W points
    # on each of its c channels and T frames (2.5·N·log2 N real flops = 1.25·N·log2 N MACs each).
    expected = 0

    def hook(module, inputs, output):
        nonlocal expected
        b, c, t, h, w = inputs[0].shape
        expected += 2 * 1.25 * h * w * math.log2(h * w) * b * c * t

    for m in model.modules():
        if isinstance(m, FourierUnit):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, 2, 64, 64))
    assert expected > 0 and abs(result["macs_fft"] - expected) <= 2 * 40 * 2  # rounding per transform
    # Options reach the model; LFU adds one more Fourier unit per spectral transform.
    assert main(["profile", "--model", "ffc_c2d_r50", "--frames", "2", "--size", "64",
                 "--model-option", "lfu=true", "--json"]) == 0  # fmt: skip
    lfu = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert round(lfu["params"] / 1e6, 2) == 25.49 and lfu["macs_fft"] > result["macs_fft"]
    assert main(["profile", "--model", "ffc_c2d_r50", "--frames", "2", "--size", "64"]) == 0
    assert "FFTs" in capsys.readouterr().out


# --------------------------------------------------------------------------- srb / bat


@pytest.fixture(scope="module")
def transform_profiles():
    clip = (1, 3, 16, 112, 112)  # r3d18's res4 (layer3, C=256): 2x7x7
    spec = {
        "srb": {"kind": "srb"},
        "srb_lo": {"kind": "srb", "options": {"transform": "lo"}, "input_size": [16, 112, 112]},
        "bat": {"kind": "bat", "options": {"ts": 2}},
    }
    out = {name: profile_model(build_model("r3d18", num_classes=10, nonlocal_blocks=s), input_shape=clip)
           for name, s in spec.items()}
    out[None] = profile_model(build_model("r3d18", num_classes=10), input_shape=clip)
    return out


def test_srb_counts_its_convs_and_reports_ffts_apart(transform_profiles):
    base, srb = transform_profiles[None], transform_profiles["srb"]
    c, t, h, w, g = 256, 2, 7, 7, 8
    wh = w // 2 + 1
    conv = 4 * c * c // g * t * h * wh  # grouped 1x1 conv over the 2C spectral channels
    assert srb.macs_nonlocal == conv
    assert srb.macs_nonlocal_table7 == conv + 2 * (2 * c * t * h * wh)  # + its BN
    assert srb.macs_table7 - base.macs_table7 == srb.macs_nonlocal_table7
    # FFTs: one rfft2 and one irfft2 of B·C·T = 512 signals of 7x7, 2.5·n·log2(n)/2 MACs each.
    import math

    n = h * w
    assert abs(srb.macs_fft - 2 * int(5 * n * math.log2(n) * c * t / 2) // 2) <= 2
    assert base.macs_fft == 0 and srb.macs - base.macs == srb.macs_nonlocal


def test_srb_lo_and_bat_table7_counts_their_convs_not_their_products(transform_profiles):
    base, lo, bat = transform_profiles[None], transform_profiles["srb_lo"], transform_profiles["bat"]
    c, t, h, w = 256, 2, 7, 7
    nodes = t * h * w
    assert lo.macs_nonlocal_table7 == c * c // 2 * nodes + 2 * c * nodes
    assert lo.macs_nonlocal - lo.macs_nonlocal_table7 + 2 * c * nodes == 2 * c * t * h * w * (h + w)  # P X Q, twice
    cp, k, s, tk, ts = c // 2, 8, 7, 4, 2
    convs = c * cp * nodes + cp * k * nodes + 2 * k * k * s**3 * t + ts * ts * tk * k * ts + cp * cp * nodes + cp * c * nodes
    norms = (cp + k + cp + c) * nodes
    assert bat.macs_nonlocal_table7 == convs + 2 * norms
    assert bat.macs_table7 - base.macs_table7 == bat.macs_nonlocal_table7
    # The einsum Kronecker products: 2·C'·T·H·W·s spatial + C'·H·W·T·ts temporal.
    assert bat.macs_nonlocal - convs == 2 * cp * nodes * s + cp * nodes * ts


def test_cli_profile_binds_lo_to_the_clip_and_prints_ffts_apart(capsys):
    # --frames/--size are the nominal clip: LO binds to res4's map of a 8x112² clip (1x7x7).
    spec = '{"kind": "srb", "options": {"transform": "lo", "spectrum_relu": true}}'
    assert main(["profile", "--model", "r3d18", "--frames", "8", "--size", "112", "--nonlocal", spec]) == 0
    assert "FFTs" not in capsys.readouterr().out  # LO has no FFT
    assert main(["profile", "--model", "r3d18", "--frames", "8", "--size", "112", "--nonlocal", "srb"]) == 0
    assert "FFTs" in capsys.readouterr().out


def test_cli_profile_bare_kind_option_error_says_how_to_give_options(capsys):
    # r3d18 at 16x112x112: layer3 map 2x7x7, so BAT's default ts=4 does not fit; a bare kind
    # has nowhere for options, so the error says to use a JSON spec, and that spec then works
    assert main(["profile", "--model", "r3d18", "--frames", "16", "--size", "112", "--nonlocal", "bat"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "set options.ts" in err
    assert """--nonlocal '{"kind": "bat", "options": {...}}'""" in err
    assert main(["profile", "--model", "r3d18", "--frames", "16", "--size", "112", "--nonlocal",
                 '{"kind": "bat", "options": {"ts": 2}}', "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["nonlocal_keys"] == ["layer3_after_0"]


def test_size_bound_placement_probe_works_when_the_last_map_is_one_cell():
    # r3d18 at 8x32x32 ends in a 1x1x1 map: the shape probe must not run BatchNorm in training mode
    model = build_model("r3d18", num_classes=5,
                        nonlocal_blocks={"kind": "bat", "options": {"s": 2, "ts": 1}, "input_size": [8, 32, 32]})
    assert list(model.nonlocal_blocks) == ["layer3_after_0"]
    assert model.eval()(torch.randn(1, 3, 8, 32, 32)).shape == (1, 5)
