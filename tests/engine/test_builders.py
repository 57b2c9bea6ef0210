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
    # 3D-ResNets-PyTorch 2017 container: DataParallel keys, epoch/arch/optimizer beside, and
    # no BatchNorm num_batches_tracked (saved before PyTorch 0.4 added them).
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
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
        if key.endswith("num_batches_tracked"):
            assert int(value) == 0 and key in report.defaulted
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


def test_the_shipped_snl_recipe_fine_tunes_from_the_registry_checkpoint(tiny_prepared, tmp_path, monkeypatch, capsys):
    """The user's path with `configs/ucf101/r3d50_snl.yaml` as shipped (only data, classes,
    clip size and length overridden): the registry name finds the Hara 2017 file in the
    offline cache, the backbone loads, the SNL block is placed before res4's last block,
    one epoch trains, the evaluation and `compare` run. (The baseline recipe differs only in
    `nonlocal_blocks`: every shipped recipe is validated in tests/config/test_validation.py.)"""
    from pathlib import Path

    from snl_video.cli import main
    from snl_video.engine.checkpoint import load_checkpoint

    from ..helpers import NUM_CLASSES

    repo = Path(__file__).resolve().parents[2]
    torch.manual_seed(0)
    source = build_model("r3d50", num_classes=400)
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 200, "arch": "resnet-50", "state_dict": state, "optimizer": {}},
               tmp_path / "resnet-50-kinetics.pth")  # the registry's file name for r3d50.hara2017_k400
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    overrides = [f"data.root={tiny_prepared}", f"model.num_classes={NUM_CLASSES}", "data.num_frames=4",
                 "data.crop_size=40", "data.batch_size=4", "data.train_scales=[1.0]", "schedule.epochs=1",
                 "data.num_workers=0", "eval.num_clips=1", "eval.num_crops=1", "runtime.device=cpu",
                 "runtime.progress=false"]
    run = tmp_path / "snl"
    code = main(["train", "--config", str(repo / "configs" / "ucf101" / "r3d50_snl.yaml"), *overrides,
                 f"runtime.output_dir={run}"])
    assert code == 0
    assert (run / "eval" / "metrics.json").is_file()
    model = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    assert "nonlocal_blocks.layer3_after_4.w1.weight" in model  # before the last of res4's 6 blocks
    # the backbone started from the file: a frozen-in-expectation tensor moved only by one small epoch
    start = source.state_dict()["layer4.2.conv3.weight"]
    assert (model["layer4.2.conv3.weight"] - start).abs().max() < 0.05 * start.abs().max()
    capsys.readouterr()
    assert main(["compare", str(run), "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert "| ucf101_r3d50_snl" in table and "| snl" in table


def test_a_pretrained_file_of_a_known_family_is_normalised_as_that_family_is(tmp_path):
    """torchvision's r3d_18 state dict under a name of the user's: fed with torchvision's
    Kinetics mean/std (as `pretrained: r3d_18.torchvision_k400` and `predict --weights FILE`
    are), not 3D-ResNets-PyTorch's default ones."""
    import torchvision

    from snl_video.engine.builders import normalization_from_config, resolve_recipe

    path = tmp_path / "my kinetics r3d18.pth"
    torch.save(torchvision.models.video.r3d_18(num_classes=400).state_dict(), path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{name: r3d_18, num_classes: 5}}\nnonlocal_blocks: snl\npretrained: '{path}'\n")
    cfg = load_config(recipe)
    # the independent reference: torchvision's own preset for these weights (no download)
    preset = torchvision.models.video.R3D_18_Weights.KINETICS400_V1.transforms()
    norm = normalization_from_config(cfg)
    assert norm.mean == pytest.approx(tuple(preset.mean)) and norm.std == pytest.approx(tuple(preset.std))
    resolved = resolve_recipe(cfg)
    assert resolved.config.data.mean == pytest.approx(tuple(preset.mean))
    assert any("r3d_18.torchvision_k400" in line for line in resolved.describe())


def test_fine_tuning_from_an_snl_video_checkpoint_keeps_its_normalisation(tmp_path):
    from snl_video.config import config_with_overrides
    from snl_video.engine.builders import normalization_from_config
    from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint

    first = config_with_overrides({"model": {"name": "r3d10", "num_classes": 4}},
                                  ["data.mean=[0.5,0.5,0.5]", "data.std=[0.25,0.25,0.25]"], source="test")
    model = build_model_from_config(first)
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(first, class_names=None)},
                           tmp_path / "stage1.pt")
    second = config_with_overrides({"model": {"name": "r3d10", "num_classes": 7}, "pretrained": str(ckpt)}, [],
                                   source="test")
    norm = normalization_from_config(second)
    assert norm.mean == (0.5, 0.5, 0.5) and norm.std == (0.25, 0.25, 0.25)


def _relabelled(prepared, dest, names):
    """A copy of a prepared folder (frames shared by a link) whose class of old label l is
    called ``names[l]`` and numbered by the position of that name in sorted order."""
    import json
    import os

    import pandas as pd

    dest.mkdir()
    os.symlink(prepared / "videos", dest / "videos")
    (dest / "settings.json").write_text((prepared / "settings.json").read_text())
    order = sorted(names)
    (dest / "classes.json").write_text(json.dumps(order))
    index = pd.read_csv(prepared / "index.csv", keep_default_na=False)
    old_labels = list(index["label"])
    index["class_name"] = [names[label] for label in old_labels]
    index["label"] = [order.index(names[label]) for label in old_labels]
    index.to_csv(dest / "index.csv", index=False)
    return dest


def _stage_one(tiny_prepared, tmp_path):
    from snl_video.engine.builders import class_names
    from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint

    from ..helpers import tiny_config

    cfg = tiny_config(tiny_prepared, tmp_path / "stage1")
    torch.manual_seed(5)
    model = build_model_from_config(cfg)
    torch.nn.init.normal_(model.fc.weight)
    torch.nn.init.normal_(model.fc.bias)
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1,
                            **checkpoint_metadata(cfg, class_names=class_names(cfg))}, tmp_path / "stage1.pt")
    return cfg, model, ckpt


def test_fine_tuning_from_a_checkpoint_of_the_same_classes_numbered_otherwise_reorders_its_head(
        tiny_prepared, tmp_path):
    import dataclasses

    from snl_video.config import PretrainedConfig
    from snl_video.engine.builders import class_names

    cfg, first, ckpt = _stage_one(tiny_prepared, tmp_path)
    names = class_names(cfg)
    other = _relabelled(tiny_prepared, tmp_path / "sorted", names)  # as `prepare folder` numbers them
    assert class_names(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(other)))) != names
    second = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(other)),
                                 pretrained=PretrainedConfig(source=str(ckpt)))
    model = build_model_from_config(second)
    # each dataset class's row is the row the first stage learnt for that class name
    for label, name in enumerate(class_names(second)):
        old = names.index(name)
        assert torch.equal(model.fc.weight[label], first.fc.weight[old]), name
        assert torch.equal(model.fc.bias[label], first.fc.bias[old]), name
    assert torch.equal(model.layer1[0].conv1.weight, first.layer1[0].conv1.weight)  # the backbone as saved


def test_fine_tuning_from_a_checkpoint_of_other_classes_starts_a_fresh_head(tiny_prepared, tmp_path):
    import dataclasses

    from snl_video.config import PretrainedConfig

    cfg, first, ckpt = _stage_one(tiny_prepared, tmp_path)
    other = _relabelled(tiny_prepared, tmp_path / "other", ["Run", "Jump", "Swim", "Row"])
    second = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(other)),
                                 pretrained=PretrainedConfig(source=str(ckpt)))
    model = build_model_from_config(second)
    assert not torch.equal(model.fc.weight, first.fc.weight)  # old: the first stage's rows, by position
    assert set(model.load_report.reinitialised_head) == {"fc.weight", "fc.bias"}
    assert torch.equal(model.layer1[0].conv1.weight, first.layer1[0].conv1.weight)
