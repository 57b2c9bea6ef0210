"""``runtime.checkpoint_format: safetensors``: the weights beside the resumable ``last.pt``."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from snl_video.config import ConfigError, config_from_dict, config_to_dict
from snl_video.engine.checkpoint import load_training_checkpoint
from snl_video.engine.train import train

from ..helpers import tiny_config


def test_safetensors_weights_equal_the_checkpoints_model_state(tiny_prepared, tmp_path):
    cfg = tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 1, "kind": "cosine"},
                      runtime={"checkpoint_format": "safetensors"})
    train(cfg)
    ckpt_dir = tmp_path / "run" / "checkpoints"
    state = load_training_checkpoint(ckpt_dir / "last.pt")
    assert "optimizer" in state  # the resumable checkpoint stays
    weights = load_file(str(ckpt_dir / "last.safetensors"))
    assert weights.keys() == state["model"].keys()
    assert all(torch.equal(weights[k], state["model"][k]) for k in weights)
    with safe_open(str(ckpt_dir / "last.safetensors"), framework="pt") as f:
        assert f.metadata()["epoch"] == "1"


def test_the_default_writes_no_safetensors_and_a_bad_name_is_a_config_error(tiny_prepared, tmp_path):
    cfg = tiny_config(tiny_prepared, tmp_path / "run")
    assert cfg.runtime.checkpoint_format == "torch"
    raw = config_to_dict(cfg)
    raw["runtime"]["checkpoint_format"] = "safetensor"
    with pytest.raises(ConfigError, match="checkpoint_format"):
        config_from_dict(raw)
