"""The registry: names, listing, errors, and a forward/backward matrix over every model."""

from __future__ import annotations

import pytest
import torch

from snl_video.models import ResNet3D, build_model, list_models, model_entry, register_model
from snl_video.models.architectures import hara_resnet
from snl_video.models.slowfast import SlowFast3D
from snl_video.models.x3d import X3D

EXPECTED = [
    "r3d10", "r3d18", "r3d34", "r3d50", "r3d101", "r3d152", "r3d200",
    "i3d_r50", "slow_r50", "c2d_r50",
    "r3d_18", "mc3_18", "r2plus1d_18",
    "ffc_c2d_r50", "ffc_i3d_r50", "ffc_r3d50", "ffc_r3d10", "ffc_r3d18", "bat_c2d_r50", "bat_i3d_r50",
    "slowfast_r50", "x3d_xs", "x3d_s", "x3d_m",
]  # fmt: skip
# torchvision's transformer / separable baselines: no non-local placement, MViT and S3D need
# 16x224² clips (tests/models/test_torchvision_video.py covers them).
BASELINES = ["mvit_v2_s", "swin3d_t", "s3d"]
HEAVY = {"r3d101", "r3d152", "r3d200"}  # > 80 M parameters: slow on 2 CPU cores


def test_every_issue_model_is_registered():
    assert sorted(list_models()) == sorted(EXPECTED + BASELINES)


def test_list_models_pattern():
    assert list_models("r3d?0") == ["r3d10", "r3d50"]
    assert set(list_models("*_r50")) == {"i3d_r50", "slow_r50", "c2d_r50", "ffc_c2d_r50", "ffc_i3d_r50", "bat_c2d_r50", "bat_i3d_r50", "slowfast_r50"}
    assert list_models("nothing*") == []


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match="'r3d50' is already registered"):
        register_model("r3d50", family="hara", reference="x")(lambda: hara_resnet(50))


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'r3d51'; valid models: r3d10, .*r2plus1d_18"):
        build_model("r3d51", num_classes=10)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['dropot'\] for model 'i3d_r50'; valid options: dropout=0.5"):
        build_model("i3d_r50", num_classes=10, dropot=0.1)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True])
def test_bad_num_classes(bad):
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        build_model("r3d10", num_classes=bad)


def test_bad_input_shape_is_explained():
    model = build_model("r3d10", num_classes=3)
    with pytest.raises(ValueError, match=r"expected a clip batch \(B, 3, T, H, W\), got shape \(1, 3, 32, 32\)"):
        model(torch.zeros(1, 3, 32, 32))


def test_hara_options_change_the_architecture():
    model = build_model("r3d18", num_classes=3, conv1_t_size=3, conv1_t_stride=2, no_max_pool=True, widen_factor=2.0)
    assert model.conv1.weight.shape == (128, 3, 3, 7, 7)
    assert model.conv1.stride == (2, 2, 2)
    assert model.maxpool is None
    assert model.fc.in_features == 1024
    assert model_entry("r3d18").options() == {
        "conv1_t_size": 7, "conv1_t_stride": 1, "no_max_pool": False, "widen_factor": 1.0, "shortcut": "B",
    }  # fmt: skip
    with pytest.raises(ValueError, match="shortcut must be 'A'"):
        build_model("r3d18", num_classes=3, shortcut="C")


MATRIX = [
    pytest.param(name, kind, marks=[pytest.mark.slow] if name in HEAVY else [], id=f"{name}-{kind or 'plain'}")
    for name in EXPECTED
    for kind in (None, "snl")
]


@pytest.mark.parametrize("name, nonlocal_kind", MATRIX)
def test_forward_backward_matrix(name, nonlocal_kind):
    """Tiny clip: logits of the right shape, finite; every parameter receives a gradient."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, nonlocal_blocks=nonlocal_kind)
    assert isinstance(model, (ResNet3D, SlowFast3D, X3D))
    if nonlocal_kind:
        assert len(model.nonlocal_blocks) == 1
    model.train()
    clip = torch.randn(2, 3, 4, 32, 32)
    logits = model(clip)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    logits.square().sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    assert model.fc.weight.grad.abs().sum() > 0
