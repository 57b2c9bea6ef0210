"""The fine-tuning path end to end: upstream model → upstream container file →
``build_model(..., pretrained=path)`` → the same logits.

pytorchvideo's hub builders and torchvision's video ResNets are the installed upstream
code: each is built, every tensor is given a fresh random value (BN affine parameters and
running statistics included, so each norm must land where upstream has it), saved the way
upstream ships it, loaded through snl_video's one loading path and compared in eval mode
(float32, ≤1e-4 of the logits' scale). Hara's keys are ours, so its container is written
from an snl_video model and the logits must be bit-identical.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from snl_video.models import build_model

from ..helpers import randomize_batchnorm

CLASSES = 400


def randomise_model(model: nn.Module, *, seed: int) -> None:
    """Random values for every parameter and buffer, at a scale that keeps a deep net's activations finite."""
    randomize_batchnorm(model, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (), generator=gen)))
            elif isinstance(module, (nn.Conv3d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)


def assert_same_logits(reference: nn.Module, ours: nn.Module, clip: torch.Tensor, *, atol: float = 1e-4) -> None:
    reference.eval()
    ours.eval()
    with torch.no_grad():
        expected = reference(clip)
        actual = ours(clip)
    assert actual.shape == expected.shape == (clip.shape[0], CLASSES)
    scale = expected.abs().max().item()
    assert scale > 1e-3  # vacuous on all-zero logits
    torch.testing.assert_close(actual, expected, atol=atol * max(scale, 1.0), rtol=0)


def _clip(frames: int, size: int) -> torch.Tensor:
    return torch.randn(1, 3, frames, size, size, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("name, frames, size", [("i3d_r50", 4, 32), ("slow_r50", 4, 32), ("c2d_r50", 4, 32)])
def test_pytorchvideo_hub_checkpoint_gives_upstream_logits(tmp_path, name, frames, size, caplog):
    from pytorchvideo.models import hub

    torch.manual_seed(0)
    reference = getattr(hub, name)(pretrained=False, model_num_class=CLASSES)
    randomise_model(reference, seed=1)
    path = tmp_path / f"{name}.pyth"
    torch.save({"model_state": reference.state_dict()}, path)
    with caplog.at_level(logging.INFO):
        ours = build_model(name, num_classes=CLASSES, pretrained=path)
    report = ours.load_report
    assert report.ok and not report.reinitialised_head and not report.new and not report.ignored
    assert len(report.loaded) == len(reference.state_dict()) == len(ours.state_dict())
    assert "load report for" in caplog.text
    # The hub head average-pools with a kernel fixed for 8x224x224 clips; resize it (no
    # parameters) to this clip's final map, where it is the global average ours takes.
    final_t = frames // 2 if name != "slow_r50" else frames
    reference.blocks[-1].pool = nn.AvgPool3d((final_t, size // 32, size // 32), stride=1)
    assert_same_logits(reference, ours, _clip(frames, size))


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18"])
def test_torchvision_state_dict_gives_upstream_logits(tmp_path, name):
    import torchvision.models.video as tv

    torch.manual_seed(0)
    reference = getattr(tv, name)(weights=None, num_classes=CLASSES)
    randomise_model(reference, seed=2)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    ours = build_model(name, num_classes=CLASSES, pretrained=path)
    assert ours.load_report.ok and len(ours.load_report.loaded) == len(reference.state_dict())
    assert_same_logits(reference, ours, _clip(4, 48))


def save_hara2017(model: nn.Module, path) -> None:
    """3D-ResNets-PyTorch 2017 container: DataParallel keys, epoch/arch/optimizer alongside, and
    no BatchNorm ``num_batches_tracked`` (the release predates PyTorch 0.4, which added it)."""
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 200, "arch": "resnet-18", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)


def _hara_source(name: str, *, classes: int = CLASSES, seed: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    source = build_model(name, num_classes=classes)
    randomise_model(source, seed=seed)
    return source.eval()


@pytest.mark.parametrize("name", ["r3d18", "r3d50"])
def test_hara2017_container_gives_identical_logits(tmp_path, name):
    source = _hara_source(name)
    path = tmp_path / "resnet-kinetics.pth"
    save_hara2017(source, path)
    ours = build_model(name, num_classes=CLASSES, pretrained=path).eval()
    clip = _clip(4, 32)
    with torch.no_grad():
        assert torch.equal(ours(clip), source(clip))
    counters = [k for k in source.state_dict() if k.endswith("num_batches_tracked")]
    assert sorted(ours.load_report.defaulted) == sorted(counters) and counters
    assert not ours.load_report.missing
    for key, value in source.state_dict().items():
        expected = torch.zeros_like(value) if key in counters else value  # the file has no counters: 0
        assert torch.equal(ours.state_dict()[key], expected), key


def test_hara2020_container_with_a_700_class_head_fine_tunes(tmp_path):
    source = _hara_source("r3d18", classes=700, seed=4)
    path = tmp_path / "r3d18_K_200ep.pth"
    torch.save({"epoch": 200, "arch": "resnet", "state_dict": source.state_dict(), "optimizer": {}, "scheduler": {}}, path)
    ours = build_model("r3d18", num_classes=101, pretrained=path).eval()
    assert ours.load_report.reinitialised_head == ["fc.weight", "fc.bias"]
    clip = _clip(4, 32)
    with torch.no_grad():
        assert torch.equal(ours.forward_features(clip), source.forward_features(clip))
