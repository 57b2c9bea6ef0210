"""The whole path: file → detect → convert → (inflate) → load with a report."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from snl_video.weights.errors import WeightsError, WrongArchitectureError
from snl_video.weights.pretrained import load_pretrained

from snl_video.weights.loading import load_state_with_report

from .layouts import R18_BLOCKS, hara_resnet_state, mmaction2_i3d_state, randomise, sgd_state
from .sources import ResNet18In3d


class _ShapeModel(nn.Module):
    """A module whose state_dict has exactly the given keys and shapes (stand-in for an snl_video r3d)."""

    def __init__(self, shapes: dict[str, torch.Size]) -> None:
        super().__init__()
        for key, shape in shapes.items():
            *path, leaf = key.split(".")
            module = self
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, nn.Module())
                module = getattr(module, part)
            if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
                module.register_buffer(leaf, torch.zeros(shape, dtype=torch.long if "num_batches" in key else torch.float))
            else:
                module.register_parameter(leaf, nn.Parameter(torch.zeros(shape)))


def test_hara2017_file_into_an_r3d_layout_with_new_head_and_nonlocal(tmp_path):
    state = hara_resnet_state(num_classes=400)
    path = tmp_path / "resnet-50-kinetics.pth"
    torch.save({"epoch": 200, "arch": "resnet-50", "state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer": sgd_state(2)}, path)
    shapes = {k: v.shape for k, v in state.items()}
    shapes["fc.weight"], shapes["fc.bias"] = torch.Size([101, shapes["fc.weight"][1]]), torch.Size([101])
    shapes["layer3.1.nonlocal.theta.weight"] = torch.Size([4, 8, 1, 1, 1])
    model = _ShapeModel(shapes)
    model.fc = nn.Linear(shapes["fc.weight"][1], 101)
    report = load_pretrained(model, path)
    assert report.ok and report.new == ["layer3.1.nonlocal.theta.weight"]
    assert sorted(report.reinitialised_head) == ["fc.bias", "fc.weight"]
    got = model.state_dict()
    for k, v in state.items():
        if not k.startswith("fc."):
            assert torch.equal(got[k], v), k


def test_imagenet_resnet18_is_inflated_into_a_3d_resnet(tmp_path):
    state = randomise(torchvision.models.resnet18(weights=None).state_dict())
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = ResNet18In3d()
    report = load_pretrained(model, path)
    assert report.reinitialised_head == ["fc.weight", "fc.bias"]  # 1000 → 10 classes
    torch.testing.assert_close(model.conv1.weight.sum(dim=2), state["conv1.weight"])
    with pytest.raises(WeightsError, match="shape-mismatched|SHAPE MISMATCH"):
        load_pretrained(ResNet18In3d(), path, inflate="never")


def test_wrong_depth_file_is_named(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save({"epoch": 1, "arch": "resnet-18", "state_dict": hara_resnet_state(blocks=R18_BLOCKS, bottleneck=False),
                "optimizer": {}}, path)
    model = _ShapeModel({k: v.shape for k, v in hara_resnet_state().items()})
    with pytest.raises(WrongArchitectureError) as info:
        load_pretrained(model, path)
    assert "hara2017 checkpoint of ResNet-18" in str(info.value) and "ResNet-50" in str(info.value)


def test_a_foreign_format_is_converted_before_loading(tmp_path):
    # A pytorchvideo container (its keys are not the model's) goes through its format's converter.
    path = tmp_path / "x.pyth"
    torch.save({"model_state": {"blocks.0.conv.weight": torch.ones(2, 3, 1, 1, 1)}}, path)
    model = _ShapeModel({"conv1.weight": torch.Size([2, 3, 1, 1, 1])})
    report = load_pretrained(model, path)
    assert report.loaded == ["conv1.weight"] and torch.equal(model.conv1.weight, torch.ones(2, 3, 1, 1, 1))


def test_unknown_source_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="registry name"):
        load_pretrained(nn.Linear(1, 1), "no/such/file.pth")


def test_unconverted_keys_of_a_same_layout_network_get_the_conversion_advice():
    model = _ShapeModel({k: v.shape for k, v in hara_resnet_state().items()})
    with pytest.raises(WrongArchitectureError, match="key names probably differ"):
        load_state_with_report(model, mmaction2_i3d_state(nonlocal_blocks=False))
