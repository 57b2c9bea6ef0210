"""Sub-sampled keys (max-pooled φ and g, the NL paper's §3.3) and biased θ/φ/g, against dense formulas.

The reference pools by reshaping windows and taking their maximum (no ``max_pool3d``) and
builds every affinity as an explicit ``N × M`` matrix (``M`` pooled keys).
"""

from __future__ import annotations

import pytest
import torch

from snl_video.config import ConfigError, config_from_dict
from snl_video.nonlocal_blocks import build_nonlocal, nonlocal_options

from . import reference as ref
from .reference import randomise


def _project(conv, x):
    out = ref.project(conv, x)
    return out if conv.bias is None else out + conv.bias.view(1, -1, 1)


def _pool(u, shape, window):
    """(B, C, N) on a (T, H, W) grid → (B, C, M): maxima of non-overlapping windows (floor)."""
    b, c, _ = u.shape
    (t, h, w), (pt, ph, pw) = shape, window
    grid = u.reshape(b, c, t, h, w)[:, :, : t // pt * pt, : h // ph * ph, : w // pw * pw]
    grid = grid.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw)
    return grid.amax(dim=(3, 5, 7)).reshape(b, c, -1)


def _reference(block, x, window):
    kind, opts = block.kind, block.options
    b, c, t, h, w = x.shape
    xf = x.reshape(b, c, -1)
    th = _project(block.theta, xf)
    ph = _pool(_project(block.phi, xf), (t, h, w), window)
    z = _project(block.g, xf)
    zk = _pool(z, (t, h, w), window)
    cs = th.shape[1]
    logits = th.transpose(1, 2) @ ph  # (B, N, M)
    if kind in ("nl", "ns", "snl_a2"):
        a = ref.softmax_rows(logits * (cs**-0.5 if opts.get("scale") else 1.0))
    elif kind == "nl_dot":
        a = logits / ph.shape[2]
    elif kind == "dnl":
        thw, phw = th - th.mean(2, keepdim=True), ph - ph.mean(2, keepdim=True)
        s = cs**-0.5 if opts.get("scale", True) else 1.0
        pairwise = ref.softmax_rows(s / opts.get("temperature", 1.0) * thw.transpose(1, 2) @ phw)
        unary = _pool(ref.project(block.affinity.unary, xf), (t, h, w), window)[:, 0]
        u = torch.exp(unary) / torch.exp(unary).sum(1, keepdim=True)
        a = pairwise + u[:, None, :]
    else:  # pragma: no cover
        raise AssertionError(kind)
    az = torch.einsum("bij,bcj->bci", a, zk)
    out = ref.project(block.w2, az)
    if kind == "ns":
        out = ref.project(block.w2, z) - out
    elif kind == "snl_a2":  # Z W1 + A Z_keys W2
        out = ref.project(block.w1, z) + out
    out = ref.batchnorm_eval(block.bn, out)
    if block.activation == "relu":
        out = torch.relu(out)
    return x + out.reshape(b, c, t, h, w)


CASES = [
    ("nl", {}, (1, 2, 2)),
    ("nl", {"scale": True, "bias": True, "activation": "none"}, (1, 2, 2)),
    ("nl_dot", {"impl": "dense", "bias": True}, (1, 2, 2)),
    ("nl_dot", {"impl": "linear"}, (2, 2, 2)),
    ("ns", {"bias": True}, (1, 2, 2)),
    ("snl_a2", {"bias": True}, (1, 2, 2)),
    ("dnl", {}, (1, 2, 2)),
    ("dnl", {"bias": True, "temperature": 0.5}, (2, 1, 2)),
]


@pytest.mark.parametrize("kind,options,window", CASES, ids=[f"{k}-{o}-{w}" for k, o, w in CASES])
def test_subsampled_block_matches_the_dense_formula(kind, options, window):
    torch.manual_seed(0)
    block = build_nonlocal(kind, 12, inter_channels=6, subsample=list(window), **options).double()
    x = torch.randn(2, 12, 4, 5, 7, dtype=torch.float64)  # odd sizes: the pool drops the last row / column
    assert torch.equal(block(x), x)  # identity at init, biases or not
    if options.get("bias"):
        with torch.no_grad():
            for conv in (block.theta, block.phi, block.g):
                conv.bias.normal_()
    randomise(block)
    got = block(x)
    assert not torch.equal(got, x)
    torch.testing.assert_close(got, _reference(block, x, window), rtol=1e-10, atol=1e-10)
    # the affinity really maps 4·5·7 = 140 positions to the pooled keys
    keys = (4 // window[0]) * (5 // window[1]) * (7 // window[2])
    assert block.graph_operator(x).dense().shape == (2, 140, keys)


def test_subsample_costs_fewer_affinity_entries_and_trains():
    block = build_nonlocal("nl", 8, subsample=[1, 2, 2])
    x = torch.randn(2, 8, 2, 8, 8, requires_grad=True)
    block(x).sum().backward()
    assert block.bn.weight.grad.abs().sum() > 0  # the identity-initialised block learns
    assert block.graph_operator(x).dense().shape == (2, 128, 32)


@pytest.mark.parametrize("bad", [[1, 2], [0, 2, 2], [1, 2.0, 2], "122"])
def test_bad_subsample_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="subsample must be a list of 3 positive ints"):
        build_nonlocal("nl", 8, subsample=bad)


def test_subsample_is_an_option_of_exactly_the_softmax_and_dense_kinds_and_is_validated_in_configs():
    for kind in ("nl", "nl_dot", "ns", "dnl", "snl_a2"):
        assert nonlocal_options(kind)["subsample"] == [1, 1, 1] and nonlocal_options(kind)["bias"] is False
    assert "subsample" not in nonlocal_options("snl")
    cfg = config_from_dict({"nonlocal_blocks": {"kind": "nl", "options": {"subsample": [1, 2, 2], "bias": True}}})
    assert cfg.nonlocal_blocks.options["subsample"] == [1, 2, 2]
    with pytest.raises(ConfigError, match="subsample must be a list of 3 positive ints"):
        config_from_dict({"nonlocal_blocks": {"kind": "nl", "options": {"subsample": [1, 2]}}})
