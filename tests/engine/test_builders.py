"""Config → model: the engine goes through build_model's single fine-tuning path."""

from __future__ import annotations

import pytest
import torch

from snl_video.config import load_config
from snl_video.engine.builders import build_model_from_config
from snl_video.models import build_model


def _write_checkpoint(tmp_path):
    torch.manual_seed(3)
    source = build_model("r3d10", num_classes=400)
    with torch.no_grad():
        for key, t in source.state_dict().items():
            if key.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.1)
    path = tmp_path / "resnet-10-kinetics.pth"
    # 3D-ResNets-PyTorch 2017 container: DataParallel keys, epoch/arch/optimizer beside.
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"epoch": 200, "arch": "resnet-10", "state_dict": state, "optimizer": {}}, path)
    return source, path


def test_config_pretrained_loads_backbone_replaces_head_and_keeps_blocks_new(tmp_path):
    source, path = _write_checkpoint(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{name: r3d10, num_classes: 5}}\nnonlocal_blocks: snl\npretrained: {path}\n")
    model = build_model_from_config(load_config(recipe))
    report = model.load_report
    assert any(k.startswith("fc.") for k in report.reinitialised_head)
    assert report.new and all(k.startswith("nonlocal_blocks.") for k in report.new)
    src = source.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith(("fc.", "nonlocal_blocks.")):
            continue
        assert torch.equal(value, src[key]), key
    # With its blocks at identity, the fine-tuning model computes the source's features.
    model.eval(), source.eval()
    x = torch.randn(1, 3, 4, 32, 32)
    feats = {}
    model.fc.register_forward_hook(lambda m, i, o: feats.__setitem__("ours", i[0]))
    source.fc.register_forward_hook(lambda m, i, o: feats.__setitem__("source", i[0]))
    with torch.no_grad():
        model(x), source(x)
    torch.testing.assert_close(feats["ours"], feats["source"])


def test_config_pretrained_of_another_architecture_is_refused(tmp_path):
    _, path = _write_checkpoint(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{name: r3d18, num_classes: 5}}\npretrained: {path}\n")
    with pytest.raises(ValueError) as info:
        build_model_from_config(load_config(recipe))
    assert "r3d18" in str(info.value)
