"""The one inference loader: a checkpoint's input spec round-trips; every verb gets the same model
and spec whichever way the model is named (checkpoint, weights file, recipe + old checkpoint)."""

from __future__ import annotations

import argparse

import pytest
import torch

from snl_video.cli import build_parser
from snl_video.commands.predict import load_model_from_args
from snl_video.config import save_config
from snl_video.engine.builders import build_model_from_config, input_spec_from_config
from snl_video.engine.checkpoint import (
    checkpoint_input_spec,
    checkpoint_metadata,
    load_training_checkpoint,
    save_checkpoint,
)
from snl_video.engine.loading import load_inference_model, model_from_training_state
from snl_video.inputspec import InputSpec

from ..helpers import tiny_config

NAMES = ["down", "left", "right", "up"]


@pytest.fixture(scope="module")
def saved(tiny_prepared, tmp_path_factory):
    """A self-describing checkpoint, the same tensors without a description, and the recipe file."""
    out = tmp_path_factory.mktemp("loading")
    cfg = tiny_config(tiny_prepared, out / "run", eval={"num_clips": 3, "num_crops": 1})
    torch.manual_seed(0)
    model = build_model_from_config(cfg)
    spec = InputSpec(num_frames=6, sampling_stride=2, crop_size=40, mean=(0.4, 0.45, 0.5), std=(0.2, 0.25, 0.3),
                     value_scale=1.0)
    full = save_checkpoint({"model": model.state_dict(), "epoch": 1,
                            **checkpoint_metadata(cfg, class_names=NAMES, input_spec=spec)}, out / "full.pt")
    old = save_checkpoint({"model": model.state_dict(), "epoch": 1}, out / "old.pt")
    recipe = save_config(cfg, out / "config.yaml")
    return cfg, spec, full, old, recipe, model.eval()


def _same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_input_spec_round_trips_through_a_checkpoint(saved):
    cfg, spec, full, _, _, _ = saved
    state = torch.load(full, map_location="cpu", weights_only=True)  # plain data
    assert state["input_spec"] == spec.to_dict()
    assert checkpoint_input_spec(state) == spec
    assert load_inference_model(checkpoint=full).input_spec == spec


def test_a_format_1_checkpoint_reads_to_the_same_spec(saved, tmp_path):
    # what the previous release wrote: separate normalization and clip dicts
    cfg, spec, full, _, _, _ = saved
    state = load_training_checkpoint(full)
    legacy = {k: v for k, v in state.items() if k != "input_spec"}
    legacy["normalization"] = {"mean": list(spec.mean), "std": list(spec.std), "value_scale": spec.value_scale}
    legacy["clip"] = {"num_frames": spec.num_frames, "sampling_stride": spec.sampling_stride,
                      "crop_size": spec.crop_size}
    legacy["snl_video"] = {"format": 1, "version": "0.1.0"}
    path = save_checkpoint(legacy, tmp_path / "format1.pt")
    assert checkpoint_input_spec(load_training_checkpoint(path)) == spec
    loaded = load_inference_model(checkpoint=path)
    assert loaded.input_spec == spec and loaded.class_names == NAMES


def test_the_three_sources_give_the_same_model_and_spec(saved):
    cfg, spec, full, old, recipe, model = saved
    from_checkpoint = load_inference_model(checkpoint=full)
    from_weights = load_inference_model(weights=full)  # a training checkpoint passed as --weights
    from_recipe = load_inference_model(checkpoint=old, config=recipe)
    for loaded in (from_checkpoint, from_weights, from_recipe):
        assert _same_tensors(loaded.model, model)
        assert not loaded.model.training
        assert (loaded.num_clips, loaded.num_crops, loaded.reduce) == (3, 1, cfg.eval.reduce)
        assert loaded.recipe == cfg and loaded.architecture == "r3d10"
    assert from_checkpoint.input_spec == from_weights.input_spec == spec
    # the old checkpoint stores no normalisation: the recipe's (data.mean / data.std)
    assert from_recipe.input_spec == input_spec_from_config(cfg)
    assert from_checkpoint.class_names == from_weights.class_names == NAMES
    assert from_checkpoint.describe() == (f"r3d10 + snl blocks, 4 classes, 6x40^2 clips (stride 2), 3 clips x 1 crops; "
                                          f"from {full}")


def test_eval_rebuilds_the_same_model_as_the_loader(saved):
    cfg, _, full, _, _, _ = saved
    evaluated = model_from_training_state(load_training_checkpoint(full), cfg, path=full)  # what `eval` runs
    assert _same_tensors(evaluated, load_inference_model(checkpoint=full).model)


@pytest.mark.parametrize("verb", ["predict", "explain", "features", "export", "spectrum"])
def test_every_verb_loads_through_the_one_loader(saved, verb, tmp_path):
    cfg, spec, full, old, recipe, model = saved
    extra = {"predict": ["v.avi"], "explain": ["v.avi", "--out", "o"], "features": ["v.avi", "--out", "o"],
             "export": ["--format", "pt2", "--out", "m.pt2"], "spectrum": ["v.avi", "--out", "o"]}[verb]
    parser = build_parser()
    results = []
    for source in (["--checkpoint", str(full)], ["--weights", str(full)],
                   ["--checkpoint", str(old), "--config", str(recipe)]):
        args: argparse.Namespace = parser.parse_args([verb, *source, *extra])
        results.append(load_model_from_args(args))
    for loaded in results:
        assert _same_tensors(loaded.model, model)
    assert results[0].input_spec == results[1].input_spec == spec
    assert results[2].input_spec == input_spec_from_config(cfg)


def test_overrides_change_the_clip_and_weights_take_none(saved):
    _, spec, full, _, _, _ = saved
    loaded = load_inference_model(checkpoint=full, overrides=["data.num_frames=8"])
    assert loaded.input_spec == spec.replace(num_frames=8)  # the stored normalisation stays
    with pytest.raises(ValueError, match="exactly one of"):
        load_inference_model(checkpoint=full, weights=full)
