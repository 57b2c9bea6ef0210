"""eval --weights (a checkpoint evaluated without training) and --head-from."""

from __future__ import annotations

import json

import pytest
import torch

from snl_video.cli import main
from snl_video.config import save_config
from snl_video.engine.builders import build_model_from_config
from snl_video.engine.checkpoint import save_checkpoint
from snl_video.engine.evaluate import run_evaluation
from snl_video.engine.evaluate_weights import evaluate_weights

from ..helpers import tiny_config


@pytest.fixture(scope="module")
def two_checkpoints(tiny_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("evalw")
    cfg = tiny_config(tiny_prepared, out / "run", eval={"num_clips": 2, "num_crops": 1, "batch_size": 8})
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = build_model_from_config(cfg)
        torch.nn.init.normal_(model.fc.weight, std=1.0)
        states.append(model.state_dict())
    a = save_checkpoint({"model": states[0], "epoch": 1}, out / "a.pt")
    b = save_checkpoint({"model": states[1], "epoch": 1}, out / "b.pt")
    mixed = {**states[0], "fc.weight": states[1]["fc.weight"], "fc.bias": states[1]["fc.bias"]}
    ab = save_checkpoint({"model": mixed, "epoch": 1}, out / "ab.pt")
    return cfg, a, b, ab


def test_head_from_equals_evaluating_the_combined_checkpoint(two_checkpoints, tmp_path):
    cfg, a, b, ab = two_checkpoints
    # an old-style checkpoint (no recipe) given as --weights needs the recipe: the training-checkpoint path
    # takes its stored recipe; here the recipe comes from the eval config instead
    state = torch.load(a, weights_only=True)
    from snl_video.engine.checkpoint import checkpoint_metadata
    from snl_video.engine.builders import normalization_from_config

    a_full = save_checkpoint({**state, **checkpoint_metadata(cfg, class_names=None,
                                                             normalization=normalization_from_config(cfg))},
                             tmp_path / "a_full.pt")
    combined = run_evaluation(cfg, ab, out_dir=tmp_path / "ab")
    via_head = evaluate_weights(cfg, a_full, head_from=b, out_dir=tmp_path / "w")
    assert via_head.clip_top1 == combined.clip_top1 and via_head.video_top1 == combined.video_top1
    torch.testing.assert_close(torch.as_tensor(via_head.videos.scores), torch.as_tensor(combined.videos.scores))
    assert (tmp_path / "w" / "metrics.json").is_file() and (tmp_path / "w" / "confusion_matrix.png").is_file()


def test_eval_weights_cli_and_class_count_mismatch(two_checkpoints, tmp_path, capsys):
    cfg, a, b, ab = two_checkpoints
    state = torch.load(a, weights_only=True)
    from snl_video.engine.builders import normalization_from_config
    from snl_video.engine.checkpoint import checkpoint_metadata

    a_full = save_checkpoint({**state, **checkpoint_metadata(cfg, class_names=None,
                                                             normalization=normalization_from_config(cfg))},
                             tmp_path / "a_full.pt")
    config_file = save_config(cfg, tmp_path / "c.yaml")
    assert main(["eval", "--config", str(config_file), "--weights", str(a_full), "--out", str(tmp_path / "o")]) == 0
    direct = run_evaluation(cfg, a_full, out_dir=tmp_path / "d")
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["video_top1"] == direct.video_top1
    five = tiny_config(__import__("pathlib").Path(cfg.data.root), tmp_path / "r5", model={"num_classes": 5})
    with pytest.raises(ValueError, match="has a 4-class head but the recipe's dataset has 5 classes: pass --head-from"):
        evaluate_weights(five, a_full)
    assert main(["eval", "--weights", str(a_full), "--out", str(tmp_path / "x")]) == 2
    assert "--weights needs --config" in capsys.readouterr().err
