"""The load report: head re-init, new non-local keys, ignore patterns, and loud errors otherwise."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision
from torch import nn

from snl_video.weights.errors import WeightsLoadError, WrongArchitectureError
from snl_video.weights.loading import load_state_with_report

from .layouts import randomise


class _TinyNonLocal(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.theta = nn.Conv3d(c, c // 2, 1)
        self.out = nn.Conv3d(c // 2, c, 1)
        nn.init.zeros_(self.out.weight)


class _TinyR3d(nn.Module):
    """A small model with Hara/torchvision-style names: conv1, bn1, layer1.0.*, fc."""

    def __init__(self, num_classes: int = 400, nonlocal_block: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(3, 8, (3, 7, 7), bias=False)
        self.bn1 = nn.BatchNorm3d(8)
        block = nn.Module()
        block.conv1 = nn.Conv3d(8, 8, 3, bias=False)
        block.bn1 = nn.BatchNorm3d(8)
        if nonlocal_block:
            block.nonlocal_block = _TinyNonLocal(8)
        self.layer1 = nn.Sequential(block)
        self.fc = nn.Linear(8, num_classes)


def _checkpoint(num_classes: int = 400) -> dict[str, torch.Tensor]:
    return randomise(_TinyR3d(num_classes).state_dict(), seed=5)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_classes_loads_everything():
    ckpt = _checkpoint()
    model = _TinyR3d()
    report = load_state_with_report(model, ckpt)
    assert report.ok and sorted(report.loaded) == sorted(ckpt)
    assert not (report.reinitialised_head or report.new or report.ignored)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt[k]), k


def test_class_count_mismatch_reinitialises_the_head_and_loads_the_backbone(caplog):
    ckpt = _checkpoint(400)
    model = _TinyR3d(num_classes=101)
    head_before = model.fc.weight.clone()
    with caplog.at_level(logging.INFO, logger="snl_video.weights.loading"):
        report = load_state_with_report(model, ckpt, source="k400.pth")
    assert sorted(report.reinitialised_head) == ["fc.bias", "fc.weight"]
    assert model.fc.weight.shape == (101, 8)
    assert not torch.equal(model.fc.weight, head_before)  # reset_parameters drew a fresh init
    for k in report.loaded:
        assert torch.equal(model.state_dict()[k], ckpt[k]), k
    assert len(report.loaded) == len(ckpt) - 2
    assert "2 head re-initialised" in caplog.text and "k400.pth" in caplog.text


def test_new_nonlocal_keys_keep_their_initialisation():
    ckpt = _checkpoint()
    model = _TinyR3d(nonlocal_block=True)
    before = _snapshot(model)
    report = load_state_with_report(model, ckpt)
    assert sorted(report.new) == sorted(k for k in before if "nonlocal_block" in k) and len(report.new) == 4
    for k in report.new:
        assert torch.equal(model.state_dict()[k], before[k]), k
    assert torch.count_nonzero(model.layer1[0].nonlocal_block.out.weight) == 0  # still the identity


def test_missing_backbone_key_is_an_error_and_nothing_is_loaded():
    ckpt = _checkpoint()
    del ckpt["layer1.0.conv1.weight"]
    model = _TinyR3d()
    before = _snapshot(model)
    with pytest.raises(WeightsLoadError) as info:
        load_state_with_report(model, ckpt)
    assert "layer1.0.conv1.weight" in str(info.value) and "MISSING" in str(info.value)
    assert info.value.report.missing == ["layer1.0.conv1.weight"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_shape_mismatch_in_the_backbone_is_an_error_listing_both_shapes():
    ckpt = _checkpoint()
    ckpt["layer1.0.conv1.weight"] = torch.randn(8, 8, 1, 3, 3)
    with pytest.raises(WeightsLoadError) as info:
        load_state_with_report(_TinyR3d(), ckpt)
    msg = str(info.value)
    assert "layer1.0.conv1.weight (checkpoint [8, 8, 1, 3, 3] vs model [8, 8, 3, 3, 3])" in msg


def test_unexpected_checkpoint_tensor_is_an_error_unless_ignored():
    ckpt = _checkpoint()
    ckpt["aux_head.weight"] = torch.randn(3, 8)
    ckpt["layer1.0.nonlocal_block.theta.weight"] = torch.randn(4, 8, 1, 1, 1)
    with pytest.raises(WeightsLoadError, match="UNEXPECTED.*aux_head.weight"):
        load_state_with_report(_TinyR3d(), ckpt)
    report = load_state_with_report(_TinyR3d(), ckpt, ignore=["aux_head.*", "*.nonlocal_block.*"])
    assert sorted(report.ignored) == ["aux_head.weight", "layer1.0.nonlocal_block.theta.weight"]


def test_ignore_also_covers_model_keys_and_mismatches():
    ckpt = _checkpoint()
    del ckpt["bn1.running_mean"]
    ckpt["layer1.0.conv1.weight"] = torch.randn(8, 8, 1, 3, 3)
    model = _TinyR3d()
    before = _snapshot(model)
    report = load_state_with_report(model, ckpt, ignore=["bn1.running_mean", "layer1.0.conv1.*"])
    assert sorted(report.ignored) == ["bn1.running_mean", "layer1.0.conv1.weight"]
    assert torch.equal(model.bn1.running_mean, before["bn1.running_mean"])
    assert torch.equal(model.conv1.weight, ckpt["conv1.weight"])


def test_wrong_architecture_names_both():
    ckpt = torchvision.models.resnet50(weights=None).state_dict()
    with pytest.raises(WrongArchitectureError) as info:
        load_state_with_report(torchvision.models.resnet18(weights=None), ckpt, source="r50.pth")
    msg = str(info.value)
    assert "ResNet-50" in msg and "ResNet-18" in msg and "r50.pth" in msg and "ResNet" in msg


def test_wrong_architecture_uses_the_given_checkpoint_description():
    ckpt = {f"blocks.{i}.w": torch.zeros(1) for i in range(10)}
    with pytest.raises(WrongArchitectureError, match="looks like pytorchvideo checkpoint of X"):
        load_state_with_report(_TinyR3d(), ckpt, checkpoint_description="pytorchvideo checkpoint of X")


def test_a_few_errors_are_not_called_a_wrong_architecture():
    ckpt = _checkpoint()
    del ckpt["bn1.weight"]
    with pytest.raises(WeightsLoadError) as info:
        load_state_with_report(_TinyR3d(), ckpt)
    assert not isinstance(info.value, WrongArchitectureError)


def test_summary_lists_every_category():
    ckpt = _checkpoint()
    ckpt["extra"] = torch.zeros(1)
    model = _TinyR3d(num_classes=101, nonlocal_block=True)
    report = load_state_with_report(model, ckpt, ignore=["extra"])
    text = report.summary()
    assert f"{len(report.loaded)} loaded" in text
    for word in ("head re-initialised: fc.", "new (kept at their initialisation)", "ignored: extra"):
        assert word in text
