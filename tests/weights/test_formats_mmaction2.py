"""mmaction2 I3D-R50-NL checkpoints load with their non-local weights, with logits parity.

The reference is a restatement (written here from mmcv's ``NonLocal3d`` semantics, with its
module layout, so it loads the checkpoint's own keys strictly) applied by forward hooks
after the residual blocks mmaction2 places it after, on an i3d_r50 whose backbone comes
from the same file. snl_video's side is one call: ``build_model("i3d_r50",
nonlocal_blocks=mmaction2_nonlocal_spec(mode), pretrained=FILE)``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snl_video.models import build_model, mmaction2_nonlocal_spec

from .layouts import I3D_TEMPORAL, mmaction2_i3d_state


class _ConvModule(nn.Module):
    """mmcv ConvModule with act_cfg=None: ``conv`` (+ ``bn`` when a norm is configured)."""

    def __init__(self, cin: int, cout: int, *, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 1, bias=not norm)  # bias="auto": none before a norm
        if norm:
            self.bn = nn.BatchNorm3d(cout)

    def forward(self, x):
        x = self.conv(x)
        return self.bn(x) if hasattr(self, "bn") else x


class MMNonLocal3d(nn.Module):
    """mmaction2/mmcv ``NonLocal3d`` (embedded_gaussian or dot_product, BN3d after conv_out)."""

    def __init__(self, channels: int, *, mode: str, use_scale: bool, sub_sample: bool) -> None:
        super().__init__()
        self.inter = channels // 2
        self.mode, self.use_scale = mode, use_scale
        self.g = _ConvModule(channels, self.inter, norm=False)
        self.theta = _ConvModule(channels, self.inter, norm=False)
        self.phi = _ConvModule(channels, self.inter, norm=False)
        self.conv_out = _ConvModule(self.inter, channels, norm=True)
        if sub_sample:
            pool = nn.MaxPool3d(kernel_size=(1, 2, 2))
            self.g = nn.Sequential(self.g, pool)
            self.phi = nn.Sequential(self.phi, pool)

    def forward(self, x):
        n = x.shape[0]
        g_x = self.g(x).view(n, self.inter, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(n, self.inter, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(n, self.inter, -1)
        w = torch.matmul(theta_x, phi_x)
        if self.mode == "embedded_gaussian":
            if self.use_scale:
                w = w / theta_x.shape[-1] ** 0.5
            w = w.softmax(dim=-1)
        else:
            w = w / w.shape[-1]
        y = torch.matmul(w, g_x).permute(0, 2, 1).reshape(n, self.inter, *x.shape[2:])
        return x + self.conv_out(y)


POSITIONS = {"layer2": [1, 3], "layer3": [1, 3, 5]}


def _well_scaled(state):
    """Random weights at a scale a 50-layer network carries without overflow (fan-in scaled
    convs and head, BN scales near 1, small running means)."""
    out = {}
    for k, v in state.items():
        if v.dim() >= 2:
            v = v * v[0].numel() ** -0.5
        elif k.endswith("running_mean") or k.endswith(".bias"):
            v = 0.1 * v
        elif k.endswith(".weight"):  # BN scales
            v = 0.5 + 0.25 * v.abs()
        out[k] = v
    return out


def _reference(state, path, *, mode, use_scale):
    base = build_model("i3d_r50", num_classes=400, pretrained=path, pretrained_ignore=("nonlocal_blocks.*",))
    blocks = {}
    for stage, indices in POSITIONS.items():
        for index in indices:
            prefix = f"backbone.{stage}.{index}.non_local_block."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            channels = sub["conv_out.bn.weight"].shape[0]
            block = MMNonLocal3d(channels, mode=mode, use_scale=use_scale, sub_sample=True)
            block.load_state_dict(sub, strict=True)  # the restatement has mmaction2's exact layout
            block.eval()  # held by a hook, not a submodule: base.eval() does not reach it
            blocks[(stage, index)] = block
            getattr(base, stage)[index].register_forward_hook(lambda m, i, out, b=block: b(out))
    return base, blocks


@pytest.mark.parametrize("mode, use_scale", [("embedded_gaussian", False), ("dot_product", False)])  # as published
def test_mmaction2_i3d_nl_checkpoint_loads_its_nonlocal_blocks_with_logits_parity(tmp_path, mode, use_scale):
    state = _well_scaled(mmaction2_i3d_state(nonlocal_blocks=True, width=64, temporal=I3D_TEMPORAL, sub_sample=True))
    path = tmp_path / "i3d_nl.pth"
    torch.save({"state_dict": state, "meta": {"mmaction2_version": "0.x"}}, path)

    model = build_model("i3d_r50", num_classes=400, pretrained=path,
                        nonlocal_blocks=mmaction2_nonlocal_spec(mode, use_scale=use_scale))
    report = model.load_report
    assert report.ok and not report.new and not report.ignored and not report.reinitialised_head
    assert len(report.loaded) == len(state) == len(model.state_dict())
    assert torch.equal(model.nonlocal_blocks["layer3_after_5"].theta.bias,
                       state["backbone.layer3.5.non_local_block.theta.conv.bias"])

    reference, blocks = _reference(state, path, mode=mode, use_scale=use_scale)
    # float64: the dot-product affinity is unnormalised, so random weights reach large logits
    model.double().eval()
    reference.double().eval()
    for block in blocks.values():
        block.double()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 56, 56, dtype=torch.float64)  # layer2 7x7 -> 3x3 keys, layer3 4x4 -> 2x2
    with torch.no_grad():
        got, want = model(x), reference(x)
        # the blocks matter: without them the logits differ
        for block in blocks.values():
            block.conv_out.bn.weight.zero_()
            block.conv_out.bn.bias.zero_()
        plain = reference(x)
    assert torch.isfinite(want).all() and want.abs().max() > 0.1
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9 * float(want.abs().max()))
    assert (got - plain).abs().max() > 1e-3 * want.abs().max()


@pytest.mark.parametrize("mode, use_scale, sub_sample", [("embedded_gaussian", True, True),
                                                         ("embedded_gaussian", False, False),
                                                         ("dot_product", False, False)])
def test_one_block_equals_the_restatement_in_every_mode(mode, use_scale, sub_sample):
    from snl_video.nonlocal_blocks import build_nonlocal

    torch.manual_seed(0)
    ref = MMNonLocal3d(16, mode=mode, use_scale=use_scale, sub_sample=sub_sample)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(std=0.3)
        ref.conv_out.bn.running_mean.normal_()
        ref.conv_out.bn.running_var.uniform_(0.5, 1.5)
    spec = mmaction2_nonlocal_spec(mode, use_scale=use_scale, sub_sample=sub_sample)
    ours = build_nonlocal(spec["kind"], 16, **spec["options"])
    names = {"conv_out.conv": "w2", "conv_out.bn": "bn"}
    state = {}
    for key, value in ref.state_dict().items():
        module, _, leaf = key.rpartition(".")
        module = names.get(module, module.split(".")[0])
        state[f"{module}.{leaf}"] = value
    ours.load_state_dict(state, strict=True)
    ours.eval()
    ref.eval()
    x = torch.randn(2, 16, 3, 6, 5)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ref(x), x)
