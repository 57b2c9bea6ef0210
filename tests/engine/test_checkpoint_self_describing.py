"""Training checkpoints describe themselves (recipe, class names, normalisation, clip spec)
and still read with weights_only=True; older checkpoints need --config, and say so."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from snl_video.cli import main
from snl_video.config import config_from_dict, config_to_dict, save_config
from snl_video.engine.checkpoint import describe_checkpoint, load_training_checkpoint, save_checkpoint
from snl_video.engine.train import train
from snl_video.inputspec import InputSpec

from ..helpers import NUM_CLASSES, tiny_config


@pytest.fixture(scope="module")
def trained(tiny_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("selfdesc")
    cfg = tiny_config(tiny_prepared, out / "run", schedule={"epochs": 1}, runtime={"tensorboard": False})
    result = train(cfg)
    return cfg, result.last_checkpoint


def test_training_checkpoint_holds_recipe_classes_normalisation_and_clip(trained, tiny_prepared):
    cfg, ckpt = trained
    state = torch.load(ckpt, map_location="cpu", weights_only=True)  # plain data only
    assert state["recipe"] == config_to_dict(cfg)
    assert config_from_dict(state["recipe"]) == cfg
    index = pd.read_csv(tiny_prepared / "index.csv")
    expected = [index.loc[index.label == i, "class_name"].iloc[0] for i in range(NUM_CLASSES)]
    assert state["class_names"] == expected
    assert state["input_spec"] == {"num_frames": 6, "sampling_stride": 2, "crop_size": 40, "mean": [0.45] * 3,
                                   "std": [0.225] * 3, "value_scale": 1.0, "resize": None, "fps": None}
    assert "normalization" not in state and "clip" not in state  # one record, not two
    assert state["snl_video"]["format"] == 2

    described = describe_checkpoint(load_training_checkpoint(ckpt), path=ckpt)
    assert described.self_describing and described.recipe == cfg and described.class_names == expected
    assert described.normalization.mean == (0.45, 0.45, 0.45)
    assert described.input_spec == InputSpec.from_dict(state["input_spec"])


def test_eval_without_config_uses_the_stored_recipe(trained, tmp_path, capsys):
    cfg, ckpt = trained
    config_file = save_config(cfg, tmp_path / "config.yaml")
    assert main(["eval", "--checkpoint", str(ckpt), "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", "--config", str(config_file), "--checkpoint", str(ckpt), "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a == b


def test_old_checkpoint_needs_config_and_the_message_says_so(trained, tmp_path, capsys):
    cfg, ckpt = trained
    state = load_training_checkpoint(ckpt)
    old = {k: v for k, v in state.items() if k not in ("recipe", "class_names", "input_spec", "snl_video")}
    old_path = save_checkpoint(old, tmp_path / "old.pt")
    assert main(["eval", "--checkpoint", str(old_path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--config" in err and "holds no recipe" in err and len(err.strip().splitlines()) == 1
    config_file = save_config(cfg, tmp_path / "config.yaml")
    assert main(["eval", "--config", str(config_file), "--checkpoint", str(old_path), "--out", str(tmp_path / "y")]) == 0
    described = describe_checkpoint(old, path=old_path, config=config_file)
    assert not described.self_describing and described.recipe == cfg
    assert described.normalization.std == (0.225, 0.225, 0.225)  # from the recipe


def test_stored_recipe_without_its_pretrained_file_still_rebuilds(trained, tmp_path):
    cfg, ckpt = trained
    state = load_training_checkpoint(ckpt)
    state["recipe"] = {**state["recipe"], "pretrained": {"source": str(tmp_path / "gone.pth"), "ignore": []}}
    described = describe_checkpoint(state, path=ckpt)
    assert described.recipe.pretrained is None and described.recipe.model == cfg.model
