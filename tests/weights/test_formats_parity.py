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

from .sources import CLASSES, assert_same_logits, hara_source, randomise_model, sample_clip, save_hara2017


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
    assert_same_logits(reference, ours, sample_clip(frames, size))


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
    assert_same_logits(reference, ours, sample_clip(4, 48))


@pytest.mark.parametrize("name", ["r3d18", "r3d50"])
def test_hara2017_container_gives_identical_logits(tmp_path, name):
    source = hara_source(name)
    path = tmp_path / "resnet-kinetics.pth"
    save_hara2017(source, path)
    ours = build_model(name, num_classes=CLASSES, pretrained=path).eval()
    clip = sample_clip(4, 32)
    with torch.no_grad():
        assert torch.equal(ours(clip), source(clip))
    counters = [k for k in source.state_dict() if k.endswith("num_batches_tracked")]
    assert sorted(ours.load_report.defaulted) == sorted(counters) and counters
    assert not ours.load_report.missing
    for key, value in source.state_dict().items():
        expected = torch.zeros_like(value) if key in counters else value  # the file has no counters: 0
        assert torch.equal(ours.state_dict()[key], expected), key


def test_hara2020_container_with_a_700_class_head_fine_tunes(tmp_path):
    source = hara_source("r3d18", classes=700, seed=4)
    path = tmp_path / "r3d18_K_200ep.pth"
    torch.save({"epoch": 200, "arch": "resnet", "state_dict": source.state_dict(), "optimizer": {}, "scheduler": {}}, path)
    ours = build_model("r3d18", num_classes=101, pretrained=path).eval()
    assert ours.load_report.reinitialised_head == ["fc.weight", "fc.bias"]
    clip = sample_clip(4, 32)
    with torch.no_grad():
        assert torch.equal(ours.forward_features(clip), source.forward_features(clip))
