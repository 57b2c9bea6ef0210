"""A test-time crop for the inference verbs (``--crop-size`` / ``crop_size=``): predict at a
larger crop than the training one equals ``eval`` at that crop (``data.crop_size``), for an
r3d and for an X3D whose windowed head then averages several windows; a size the model cannot
take is refused before any video is read; the outputs' records say the crop used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import snl_video
from snl_video.cli import main
from snl_video.data.ucf101 import read_class_index
from snl_video.engine.builders import build_dataset, build_model_from_config, normalization_from_config
from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint
from snl_video.engine.api import evaluation_recipe
from snl_video.engine.loading import load_inference_model
from snl_video.errors import InvalidValueError

from ..helpers import NUM_CLASSES, tiny_config

#: The test crop: larger than both training crops below (the videos are 48x64; the short side is upscaled).
TEST_CROP = 96


def _checkpoint(raw: Path, out: Path, *, model: dict, nonlocal_blocks, data: dict, seed: int):
    """A random model (non-trivial head) of a recipe that evaluates the raw AVIs with PyAV."""
    cfg = tiny_config(raw.parent / "prepared", out / "run", model=model, nonlocal_blocks=nonlocal_blocks,
                      data={"backend": "pyav", "root": str(raw / "UCF-101"), "splits_dir": str(raw / "ucfTrainTestlist"),
                            **data},
                      eval={"num_clips": 2, "num_crops": 1, "batch_size": 8})
    torch.manual_seed(seed)
    net = build_model_from_config(cfg)
    torch.nn.init.normal_(net.fc.weight, std=2.0 if model["name"] == "r3d10" else 0.2)
    state = {"model": net.state_dict(), "epoch": 1,
             **checkpoint_metadata(cfg, class_names=read_class_index(raw / "ucfTrainTestlist"),
                                   normalization=normalization_from_config(cfg))}
    return cfg, save_checkpoint(state, out / "ckpt.pt")


@pytest.fixture(scope="module")
def r3d_run(tiny_prepared, tmp_path_factory):
    """r3d10 (1/4 width, one SNL block) trained at 40² crops."""
    return _checkpoint(tiny_prepared.parent / "raw", tmp_path_factory.mktemp("crop_r3d"),
                       model={"name": "r3d10", "num_classes": NUM_CLASSES, "options": {"widen_factor": 0.25,
                                                                                        "conv1_t_size": 3}},
                       nonlocal_blocks={"kind": "snl", "positions": {"layer3": [0]}}, data={}, seed=11)


@pytest.fixture(scope="module")
def x3d_run(tiny_prepared, tmp_path_factory):
    """X3D-XS trained at 4x64² clips, its head's average pool sized for them (a 2x2 window at
    res5): at the 96² test crop the 3x3 map is covered by four windows."""
    return _checkpoint(tiny_prepared.parent / "raw", tmp_path_factory.mktemp("crop_x3d"),
                       model={"name": "x3d_xs", "num_classes": NUM_CLASSES, "options": {"head_pool_input": [4, 64, 64]}},
                       nonlocal_blocks=None, data={"num_frames": 4, "crop_size": 64}, seed=12)


def _eval_at(ckpt: Path, crop: int, out: Path):
    """``eval --checkpoint CKPT data.crop_size=CROP``: the scores and the test videos' files, in row order."""
    report = snl_video.evaluate(checkpoint=ckpt, overrides=[f"data.crop_size={crop}"], output_dir=out)
    cfg = evaluation_recipe(checkpoint=ckpt, overrides=[f"data.crop_size={crop}"])
    videos = build_dataset(cfg, subset="test", mode="clip").videos
    return report.videos.scores, [videos[i].path for i in report.videos.video_ids]


@pytest.mark.parametrize("run", ["r3d_run", "x3d_run"])
def test_predict_at_a_test_crop_equals_eval_at_that_crop(run, request, tmp_path):
    cfg, ckpt = request.getfixturevalue(run)
    assert cfg.data.crop_size < TEST_CROP
    scores, files = _eval_at(ckpt, TEST_CROP, tmp_path / "eval")
    files, scores = files[:6], scores[:6]
    result = snl_video.predict(files, checkpoint=ckpt, crop_size=TEST_CROP, top_k=1)
    assert not result.errors
    got = np.stack([p.probabilities for p in result.predictions])
    np.testing.assert_allclose(got, scores, rtol=1e-5, atol=1e-6)
    # the training crop gives other scores: the comparison can fail
    at_training_crop = np.stack([p.probabilities for p in snl_video.predict(files, checkpoint=ckpt, top_k=1).predictions])
    assert np.abs(at_training_crop - scores).max() > 1e-3


def test_the_x3d_head_is_windowed_at_the_test_crop(x3d_run, tiny_prepared):
    """At 96² the head averages windows sized for the 64² training clip, which is not a global
    average: the same weights with a global-average head (``head_pool_input: null``) score otherwise."""
    cfg, ckpt = x3d_run
    loaded = load_inference_model(checkpoint=ckpt, crop_size=TEST_CROP)
    clip = torch.randn(1, 3, 4, TEST_CROP, TEST_CROP, generator=torch.Generator().manual_seed(0))
    import dataclasses

    global_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, options={"head_pool_input": None}))
    global_head = build_model_from_config(global_cfg, load_weights=False).eval()
    global_head.load_state_dict(loaded.model.state_dict())
    with torch.no_grad():
        windowed, pooled = loaded.model(clip), global_head(clip)
        at_training_size = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(loaded.model(at_training_size), global_head(at_training_size))
    assert (windowed - pooled).abs().max() > 1e-4


def test_the_crop_is_recorded_and_the_short_side_goes_to_it(r3d_run, tmp_path):
    _, ckpt = r3d_run
    loaded = load_inference_model(checkpoint=ckpt, crop_size=TEST_CROP)
    assert loaded.input_spec.crop_size == TEST_CROP and loaded.input_spec.short_side == TEST_CROP
    assert loaded.recipe is not None and loaded.recipe.data.crop_size == TEST_CROP
    frames = torch.randint(0, 255, (6, 48, 64, 3), dtype=torch.uint8)
    assert loaded.transform(crops=1)(frames).shape == (3, 6, TEST_CROP, TEST_CROP)
    video = sorted(Path(r3d_run[0].data.root).rglob("*.avi"))[0]
    snl_video.features([video], checkpoint=ckpt, crop_size=TEST_CROP, output_dir=tmp_path / "features")
    record = json.loads((tmp_path / "features" / "features.json").read_text())
    assert record["input_spec"]["crop_size"] == TEST_CROP and record["input_spec"]["resize"] is None
    # a rerun at the training crop into the same folder is refused (the record differs)
    with pytest.raises(InvalidValueError):
        snl_video.features([video], checkpoint=ckpt, output_dir=tmp_path / "features")
    result = snl_video.export(checkpoint=ckpt, crop_size=TEST_CROP, output_file=tmp_path / "m.pt2", format="pt2")
    assert result.input_shape[-2:] == (TEST_CROP, TEST_CROP)
    side = json.loads(result.preprocessing.read_text())
    assert side["input_spec"]["crop_size"] == TEST_CROP and side["crop_size"] == TEST_CROP


def test_a_size_the_model_cannot_take_is_a_one_line_error(r3d_run, tmp_path, capsys):
    """S3D's head pools a fixed 2x7x7 window: 64² clips are refused before any video is decoded,
    with the reason its forward gives; a crop that is no size at all is refused by the flag."""
    from snl_video.models import build_model

    torch.manual_seed(0)
    s3d = tmp_path / "s3d-d76dad2f.pth"  # the registry's file name: its input spec (128x224²)
    torch.save(build_model("s3d", num_classes=400).state_dict(), s3d)
    missing = tmp_path / "never-read.avi"
    missing.write_bytes(b"not a video")
    assert main(["predict", str(missing), "--weights", str(s3d), "--crop-size", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--crop-size 64: s3d cannot take clips of 128x64x64" in err[0]
    assert "smaller than kernel size" in err[0] and "its own is 224" in err[0]
    _, ckpt = r3d_run
    assert main(["predict", str(missing), "--checkpoint", str(ckpt), "--crop-size", "0"]) == 2
    assert "--crop-size must be a positive number of pixels, got 0" in capsys.readouterr().err
