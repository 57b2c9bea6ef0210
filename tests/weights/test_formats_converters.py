"""The per-format key converters: pure functions checked on the documented upstream key
layouts (``layouts.py``), then loaded through ``build_model`` into the real models with
every tensor accounted for. Expected names are written out literally, not recomputed."""

from __future__ import annotations

import pytest
import torch

from snl_video.models import build_model
from snl_video.weights.errors import WeightsLoadError
from snl_video.weights.formats import CONVERTERS, FORMATS, KNOWN_FORMATS
from snl_video.weights.formats.caffe2 import convert_caffe2
from snl_video.weights.formats.mmaction2 import convert_mmaction2
from snl_video.weights.formats.pytorchvideo import convert_pytorchvideo
from snl_video.weights.formats.slowfast import convert_slowfast
from snl_video.weights.formats.torchvision_video import convert_torchvision_video

from .layouts import (
    C2D_TEMPORAL,
    I3D_TEMPORAL,
    SLOW_TEMPORAL,
    caffe2_blobs,
    dump_py2_style,
    mmaction2_i3d_state,
    slowfast_slow_state,
)


def test_every_format_has_its_converter_in_its_record():
    assert set(CONVERTERS) == set(KNOWN_FORMATS) == {f.name for f in FORMATS}
    assert CONVERTERS["mmaction2"] is convert_mmaction2


def _t(*shape: int) -> torch.Tensor:
    return torch.zeros(shape)


@pytest.mark.parametrize(
    "head_block, pool_block, stages",
    [(6, 2, (1, 3, 4, 5)), (5, None, (1, 2, 3, 4))],  # I3D / C2D; Slow
)
def test_pytorchvideo_stage_and_head_positions_come_from_the_keys(head_block, pool_block, stages):
    state = {"blocks.0.conv.weight": _t(1), "blocks.0.norm.running_var": _t(1)}
    for s in stages:
        state[f"blocks.{s}.res_blocks.0.branch2.conv_b.weight"] = _t(1)
        state[f"blocks.{s}.res_blocks.0.branch1_norm.bias"] = _t(1)
    state[f"blocks.{head_block}.proj.weight"] = _t(1)
    out = convert_pytorchvideo(state)
    assert "conv1.weight" in out and "bn1.running_var" in out and "fc.weight" in out
    for layer in range(1, 5):
        assert f"layer{layer}.0.conv2.weight" in out and f"layer{layer}.0.downsample.1.bias" in out
    assert len(out) == len(state)


def test_unknown_keys_pass_through_to_be_reported():
    out = convert_pytorchvideo({"blocks.0.conv.weight": _t(1), "extra.thing": _t(1)})
    assert set(out) == {"conv1.weight", "extra.thing"}


def test_torchvision_r2plus1d_stem_is_recognised():
    out = convert_torchvision_video({"stem.0.weight": _t(1), "stem.3.weight": _t(1), "stem.4.bias": _t(1),
                                     "layer1.0.conv1.0.0.weight": _t(1), "layer1.0.conv2.1.weight": _t(1)})
    assert set(out) == {"conv1.0.weight", "conv1.3.weight", "bn1.bias", "layer1.0.conv1.0.weight", "layer1.0.bn2.weight"}
    plain = convert_torchvision_video({"stem.0.weight": _t(1), "stem.1.bias": _t(1)})
    assert set(plain) == {"conv1.weight", "bn1.bias"}


def test_mmaction2_literal_keys():
    out = convert_mmaction2({
        "backbone.conv1.conv.weight": _t(1),
        "backbone.conv1.bn.running_mean": _t(1),
        "backbone.layer3.5.conv2.conv.weight": _t(1),
        "backbone.layer3.5.conv3.bn.weight": _t(1),
        "backbone.layer1.0.downsample.conv.weight": _t(1),
        "backbone.layer1.0.downsample.bn.num_batches_tracked": _t(1),
        "backbone.layer3.1.non_local_block.g.conv.bias": _t(1),
        "backbone.layer3.1.non_local_block.g.0.conv.weight": _t(1),
        "backbone.layer2.3.non_local_block.phi.0.conv.bias": _t(1),
        "backbone.layer2.3.non_local_block.theta.conv.weight": _t(1),
        "backbone.layer2.3.non_local_block.conv_out.conv.weight": _t(1),
        "backbone.layer2.3.non_local_block.conv_out.bn.running_var": _t(1),
        "cls_head.fc_cls.weight": _t(1),
    })
    assert set(out) == {"conv1.weight", "bn1.running_mean", "layer3.5.conv2.weight", "layer3.5.bn3.weight",
                        "layer1.0.downsample.0.weight", "layer1.0.downsample.1.num_batches_tracked",
                        "nonlocal_blocks.layer3_after_1.g.bias", "nonlocal_blocks.layer3_after_1.g.weight",
                        "nonlocal_blocks.layer2_after_3.phi.bias", "nonlocal_blocks.layer2_after_3.theta.weight",
                        "nonlocal_blocks.layer2_after_3.w2.weight", "nonlocal_blocks.layer2_after_3.bn.running_var",
                        "fc.weight"}


def test_slowfast_literal_keys():
    out = convert_slowfast({
        "s1.pathway0_stem.conv.weight": _t(1),
        "s1.pathway0_stem.bn.running_var": _t(1),
        "s2.pathway0_res0.branch2.a.weight": _t(1),
        "s2.pathway0_res0.branch2.a_bn.bias": _t(1),
        "s5.pathway0_res2.branch2.c_bn.running_mean": _t(1),
        "s3.pathway0_res0.branch1.weight": _t(1),
        "s3.pathway0_res0.branch1_bn.weight": _t(1),
        "head.projection.bias": _t(1),
    })
    assert set(out) == {"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.0.bn1.bias",
                        "layer4.2.bn3.running_mean", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
                        "fc.bias"}


def test_caffe2_literal_keys_and_bn_semantics():
    blobs = {
        "conv1_w": _t(1), "res_conv1_bn_s": torch.tensor([1.0]), "res_conv1_bn_b": torch.tensor([2.0]),
        "res_conv1_bn_rm": torch.tensor([3.0]), "res_conv1_bn_riv": torch.tensor([4.0]),
        "res2_0_branch2a_w": _t(1), "res2_0_branch2a_bn_s": _t(1), "res5_2_branch2c_bn_riv": _t(1),
        "res2_0_branch1_w": _t(1), "res2_0_branch1_bn_b": _t(1), "pred_w": _t(1), "pred_b": _t(1),
    }
    out = convert_caffe2(blobs)
    assert [out[f"bn1.{k}"].item() for k in ("weight", "bias", "running_mean", "running_var")] == [1, 2, 3, 4]
    assert out["bn1.num_batches_tracked"].dtype == torch.long and out["bn1.num_batches_tracked"].item() == 0
    assert {"conv1.weight", "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer4.2.bn3.running_var",
            "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias", "fc.weight", "fc.bias"} <= set(out)
    assert {"layer1.0.bn1.num_batches_tracked", "layer4.2.bn3.num_batches_tracked",
            "layer1.0.downsample.1.num_batches_tracked"} <= set(out)


def test_two_keys_mapping_to_one_is_an_error():
    with pytest.raises(KeyError, match="map to 'conv1.weight'"):
        convert_slowfast({"s1.pathway0_stem.conv.weight": _t(1), "conv1.weight": _t(1)})


# --- loaded into the real models -----------------------------------------------------------

W = 64  # the real R50 width, so the layouts fit snl_video's models


def _assert_loaded_everything(model, n_source: int) -> None:
    report = model.load_report
    assert report.ok and not report.reinitialised_head and not report.new
    assert len(report.loaded) == len(model.state_dict()) == n_source


def test_mmaction2_i3d_loads_into_i3d_r50(tmp_path):
    state = mmaction2_i3d_state(nonlocal_blocks=False, width=W, temporal=I3D_TEMPORAL)
    path = tmp_path / "i3d_r50_32x2x1_100e_kinetics400_rgb.pth"
    torch.save({"state_dict": state, "meta": {"epoch": 100}}, path)
    model = build_model("i3d_r50", num_classes=400, pretrained=path)
    _assert_loaded_everything(model, len(state))
    sd = model.state_dict()
    for ours, theirs in [("conv1.weight", "backbone.conv1.conv.weight"),
                         ("bn1.running_var", "backbone.conv1.bn.running_var"),
                         ("layer2.1.conv1.weight", "backbone.layer2.1.conv1.conv.weight"),
                         ("layer4.2.bn3.bias", "backbone.layer4.2.conv3.bn.bias"),
                         ("layer3.0.downsample.1.running_mean", "backbone.layer3.0.downsample.bn.running_mean"),
                         ("fc.weight", "cls_head.fc_cls.weight")]:
        assert torch.equal(sd[ours], state[theirs]), ours


def test_mmaction2_nonlocal_blocks_need_the_matching_spec_or_an_ignore(tmp_path):
    # (that they then load exactly is tests/weights/test_formats_mmaction2.py)
    state = mmaction2_i3d_state(nonlocal_blocks=True, width=W, temporal=I3D_TEMPORAL, sub_sample=True)
    path = tmp_path / "i3d_nl.pth"
    torch.save({"state_dict": state, "meta": {}}, path)
    with pytest.raises(WeightsLoadError, match=r"(?s)non-local blocks \['layer2_after_1', .*mmaction2_nonlocal_spec.*"
                                               r"pretrained_ignore=\('nonlocal_blocks\.\*',\)"):
        build_model("i3d_r50", num_classes=101, nonlocal_blocks="nl", pretrained=path)
    model = build_model("i3d_r50", num_classes=101, nonlocal_blocks="nl", pretrained=path,
                        pretrained_ignore=("nonlocal_blocks.*",))
    report = model.load_report
    n_nl = sum("non_local_block" in k for k in state)
    assert n_nl and len(report.ignored) == n_nl and all(k.startswith("nonlocal_blocks.") for k in report.ignored)
    assert report.new and all(k.startswith("nonlocal_blocks.") for k in report.new)
    assert report.reinitialised_head == ["fc.weight", "fc.bias"]
    assert torch.equal(model.layer3[5].conv3.weight, state["backbone.layer3.5.conv3.conv.weight"])


@pytest.mark.parametrize("name, temporal, stem_t", [("slow_r50", SLOW_TEMPORAL, 1), ("i3d_r50", I3D_TEMPORAL, 5)])
def test_slowfast_pyth_loads_into_r50s(tmp_path, name, temporal, stem_t):
    state = slowfast_slow_state(width=W, temporal=temporal, stem_t=stem_t)
    path = tmp_path / "SLOWONLY_8x8_R50.pyth"
    torch.save({"model_state": state, "optimizer_state": {}, "epoch": 196, "cfg": "TRAIN: ..."}, path)
    model = build_model(name, num_classes=400, pretrained=path)
    _assert_loaded_everything(model, len(state))
    sd = model.state_dict()
    for ours, theirs in [("conv1.weight", "s1.pathway0_stem.conv.weight"),
                         ("layer3.4.conv1.weight", "s4.pathway0_res4.branch2.a.weight"),
                         ("layer3.4.bn2.running_var", "s4.pathway0_res4.branch2.b_bn.running_var"),
                         ("layer4.1.conv1.weight", "s5.pathway0_res1.branch2.a.weight"),
                         ("layer2.0.downsample.0.weight", "s3.pathway0_res0.branch1.weight"),
                         ("fc.bias", "head.projection.bias")]:
        assert torch.equal(sd[ours], state[theirs]), ours


@pytest.mark.parametrize("name, temporal, stem_t", [("i3d_r50", I3D_TEMPORAL, 5), ("c2d_r50", C2D_TEMPORAL, 1), ("slow_r50", SLOW_TEMPORAL, 1)])
def test_caffe2_pkl_loads_into_r50s(tmp_path, name, temporal, stem_t):
    blobs = caffe2_blobs(width=W, temporal=temporal, stem_t=stem_t)
    blobs["model_iter"] = __import__("numpy").array([1000])  # solver state, skipped on read
    path = tmp_path / "model.pkl"
    dump_py2_style({"blobs": blobs}, path)
    model = build_model(name, num_classes=400, pretrained=path)
    report = model.load_report
    assert report.ok and len(report.loaded) == len(model.state_dict())
    sd = model.state_dict()
    for ours, theirs in [("conv1.weight", "conv1_w"), ("bn1.weight", "res_conv1_bn_s"),
                         ("layer1.0.bn1.running_var", "res2_0_branch2a_bn_riv"),
                         ("layer3.3.conv1.weight", "res4_3_branch2a_w"),
                         ("layer4.0.downsample.1.running_mean", "res5_0_branch1_bn_rm"),
                         ("fc.weight", "pred_w")]:
        assert torch.equal(sd[ours], torch.from_numpy(blobs[theirs])), ours


def test_caffe2_i3d_into_c2d_is_a_wrong_architecture(tmp_path):
    path = tmp_path / "i3d.pkl"
    dump_py2_style({"blobs": caffe2_blobs(width=W, temporal=I3D_TEMPORAL)}, path)
    with pytest.raises(WeightsLoadError, match=r"(?s)i3d_r50.*c2d_r50"):
        build_model("c2d_r50", num_classes=400, pretrained=path)


@pytest.mark.parametrize("name, stem_t", [("r3d50", 7), ("i3d_r50", 5)])
def test_imagenet_resnet50_is_inflated(tmp_path, name, stem_t):
    import torchvision

    torch.manual_seed(0)
    state_2d = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(state_2d, path)
    model = build_model(name, num_classes=101, pretrained=path)
    report = model.load_report
    assert report.ok and report.reinitialised_head == ["fc.weight", "fc.bias"]
    assert len(report.loaded) == len(state_2d) - 2
    # Repeat along T and divide by T: summing over time gives the 2-D kernel back.
    assert model.conv1.weight.shape[2] == stem_t
    torch.testing.assert_close(model.conv1.weight.sum(dim=2), state_2d["conv1.weight"])
    torch.testing.assert_close(model.conv1.weight[:, :, 0], state_2d["conv1.weight"] / stem_t)
    torch.testing.assert_close(model.layer1[0].conv1.weight.sum(dim=2), state_2d["layer1.0.conv1.weight"])
    assert torch.equal(model.layer2[1].bn2.running_var, state_2d["layer2.1.bn2.running_var"])
