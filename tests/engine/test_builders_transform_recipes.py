"""The SRB / BAT recipes build what they say: one block where the paper's SNL goes, bound
to (or checked against) res4's map at the recipe's clip size."""

from __future__ import annotations

from pathlib import Path

import pytest

from snl_video.config import load_config
from snl_video.engine.builders import build_model_from_config

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "configs" / "ucf101"


@pytest.mark.parametrize("name", ["r3d50_srb", "r3d50_bat", "i3d_r50_srb", "i3d_r50_bat"])
def test_recipe_places_one_identity_start_block_in_res4(name):
    cfg = load_config(RECIPES / f"{name}.yaml")
    assert cfg.nonlocal_blocks.positions == {"layer3": (4,)}
    if cfg.nonlocal_blocks.kind == "bat":
        assert cfg.nonlocal_blocks.options["zero_init"] is True
        # res4 has T = 2 in r3d50 and T = 8 in i3d_r50 at 16x112x112.
        assert cfg.nonlocal_blocks.options["ts"] == (2 if name.startswith("r3d50") else 4)


def test_bat_recipe_with_the_released_ts_is_refused_naming_the_position():
    cfg = load_config(RECIPES / "r3d50_bat.yaml", overrides=["nonlocal_blocks.options.ts=4"])
    with pytest.raises(ValueError, match=r"layer3_after_4 \(map 2x7x7 for a 16x112x112 clip\).*ts=2"):
        build_model_from_config(cfg, load_weights=False)


def test_lo_override_binds_the_block_to_res4_of_the_recipe_clip():
    cfg = load_config(RECIPES / "r3d50_srb.yaml", overrides=["nonlocal_blocks.options.transform=lo"])
    model = build_model_from_config(cfg, load_weights=False)
    block = model.nonlocal_blocks["layer3_after_4"]
    assert block.spatial_size == (7, 7) and block.source_P.shape == (7, 7)
    assert not block.alpha.detach().any()


def test_training_attaches_the_lo_retraction(tiny_prepared, tmp_path, monkeypatch):
    import torch

    import snl_video.nonlocal_blocks as blocks
    from snl_video.engine.checkpoint import load_checkpoint
    from snl_video.engine.train import train

    from ..helpers import tiny_config

    calls = []
    real = blocks.attach_orthogonal_retraction

    def spy(model, optimizer):
        handles = real(model, optimizer)
        calls.append(len(handles))
        return handles

    monkeypatch.setattr(blocks, "attach_orthogonal_retraction", spy)
    cfg = tiny_config(tiny_prepared, tmp_path / "run", nonlocal_blocks={
        "kind": "srb", "options": {"transform": "lo"}, "positions": {"layer3": [0]}}, schedule={"epochs": 1})
    result = train(cfg)
    assert calls == [1]  # one hook, on the run's optimizer, for the one LO block
    state = load_checkpoint(result.last_checkpoint)["model"]
    p = state["nonlocal_blocks.layer3_after_0.source_P"]
    assert p.shape == (3, 3)  # bound to res4's 3x3 map of a 6x40x40 clip by the placement
    assert torch.linalg.matrix_norm(p.T @ p - torch.eye(3)) < 1e-5
    assert state["nonlocal_blocks.layer3_after_0.alpha"].abs().item() > 0  # it trained
