"""The inference verbs on the new backbones: Grad-CAM and spectra on SlowFast (whose
``forward_maps`` returns a pair and whose stages live in two pathways), and pooled features
of torchvision's baselines (which have no ``forward_features`` of their own).

Each result is checked against an independent computation: Grad-CAM against the slow
pathway's last map and its gradient taken by hand; the spectrum's captured block input
against the slow pathway's map at that point; the baselines' features against the logits
their own classifier gives.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snl_video.engine.explain import gradcam
from snl_video.engine.spectrum import compute_spectra
from snl_video.models import build_model


@pytest.fixture(scope="module")
def slowfast_with_blocks():
    torch.manual_seed(0)
    model = build_model("slowfast_r50", num_classes=3,
                        nonlocal_blocks={"kind": "snl", "positions": {"slow.layer3": [0], "fast.layer4": [0]}})
    for block in model.nonlocal_blocks.values():  # move the blocks off the identity
        for p in block.parameters():
            torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def _clip(frames=8, size=64, seed=3):
    return torch.randn(1, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def test_gradcam_on_slowfast_is_the_slow_pathways_last_map(slowfast_with_blocks):
    model, x = slowfast_with_blocks, _clip()
    cam = gradcam(model, x, class_index=1)
    # By hand: the slow pathway's final map A and d logit_1 / dA, through forward_maps.
    with torch.enable_grad():
        slow, fast = model.forward_maps(x)
        slow.retain_grad()
        features = torch.cat([model.avgpool(slow).flatten(1), model.avgpool(fast).flatten(1)], dim=1)
        model.fc(model.dropout(features))[0, 1].backward()
    weights = slow.grad[0].mean(dim=(1, 2, 3))
    expected = F.relu((weights[:, None, None, None] * slow[0]).sum(0)).detach()
    assert cam.shape == expected.shape == (2, 2, 2)  # 8 frames / alpha 4, 64 / 32
    assert expected.abs().max() > 0
    torch.testing.assert_close(cam, expected)


def test_spectrum_on_slowfast_reads_each_pathways_block(slowfast_with_blocks):
    model, x = slowfast_with_blocks, _clip()
    entries = {e["name"]: e for e in compute_spectra(model, x, response_points=8)}
    assert set(entries) == {"slow_layer3_after_0", "fast_layer4_after_0"}
    # slow res4 on 2 of 8 frames at 64/16 = 4x4; fast res5 on all 8 frames at 64/32 = 2x2
    assert entries["slow_layer3_after_0"]["map_shape"] == [2, 4, 4]
    assert entries["fast_layer4_after_0"]["map_shape"] == [8, 2, 2]
    for entry in entries.values():
        assert entry["num_nodes"] == entry["map_shape"][0] * entry["map_shape"][1] * entry["map_shape"][2]
        assert entry["eigenvalues"] is not None and entry["symmetric"]  # SNL's affinity is symmetric
        assert max(abs(v) for v in entry["eigenvalues"]["real"]) <= 1 + 1e-9  # normalised: spectrum in [-1, 1]


def _baseline_features_match_its_head(name, frames, size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=4).eval()
    x = _clip(frames, size, seed=5)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    assert features.shape == (1, model.feature_channels)
    layer = model.classifier_layer()
    with torch.no_grad():
        if isinstance(layer, torch.nn.Linear):
            again = layer(features)
        else:  # S3D: a 1x1x1 conv, linear, so conv(mean) == mean(conv)
            again = layer(features[:, :, None, None, None]).flatten(1)
    torch.testing.assert_close(again, logits, rtol=1e-4, atol=1e-5)


def test_swin3d_features_are_what_its_head_classifies():
    _baseline_features_match_its_head("swin3d_t", 4, 64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mvit_v2_s", "s3d"])
def test_mvit_and_s3d_features_are_what_their_heads_classify(name):
    _baseline_features_match_its_head(name, 16, 224)


def test_predict_with_a_pytorchvideo_x3d_hub_file(tiny_prepared, tmp_path, capsys):
    """``predict --weights X3D_*.pyth``: the format is detected, the architecture found by its
    tensors, the clip fed as the registry's X3D entry says, and the scores are the model's."""
    import json

    from pytorchvideo.models.x3d import create_x3d

    from snl_video.cli import main
    from snl_video.engine.loading import load_inference_model

    from ..helpers import randomize_batchnorm

    torch.manual_seed(0)
    reference = create_x3d(model_num_class=4, head_activation=None)
    randomize_batchnorm(reference)
    # X3D-XS/S/M are one network fed different clips: the hub file name says which (under another
    # name the file is refused, tests/engine/test_loading_ambiguous.py)
    path = tmp_path / "X3D_XS.pyth"
    torch.save({"model_state": reference.state_dict()}, path)
    video = sorted((tiny_prepared.parent / "raw" / "UCF-101").glob("*/*.avi"))[0]
    assert main(["predict", "--weights", str(path), str(video), "--clips", "1", "--crops", "1", "--no-progress",
                 "--out", str(tmp_path / "p.json")]) == 0
    loaded = load_inference_model(weights=path)
    assert loaded.architecture == "x3d_xs" and loaded.input_spec.mean == (0.45, 0.45, 0.45)
    assert (loaded.input_spec.num_frames, loaded.input_spec.sampling_stride) == (4, 12)
    (row,) = json.loads((tmp_path / "p.json").read_text())["predictions"]
    assert len(row["top_k"]) == 4 and abs(sum(c["probability"] for c in row["top_k"]) - 1) < 1e-5


def test_eval_of_x3d_at_full_short_side_with_three_crops_uses_the_windowed_head(tiny_prepared, tmp_path):
    """X3D's test protocol through ``snl-video eval``: a model trained at 4x32² evaluated on three
    48² crops at short side 48 (``data.crop_size=48 eval.num_crops=3``). The head's window (sized
    for 32²: 1x1 on the 2x2 res5 map) makes the scores differ from a global average at 48², and
    agree with it at the training size 32², where there is one window."""
    import csv
    import json

    from snl_video.cli import main
    from snl_video.config import save_config
    from snl_video.engine.builders import build_model_from_config
    from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint

    from ..helpers import randomize_batchnorm
    from ..helpers import tiny_config

    cfg = tiny_config(tiny_prepared, tmp_path / "run", nonlocal_blocks=None,
                      model={"name": "x3d_xs", "num_classes": 4, "options": {"head_pool_input": [4, 32, 32]}},
                      data={"num_frames": 4, "crop_size": 32})
    torch.manual_seed(0)
    model = build_model_from_config(cfg, load_weights=False)
    randomize_batchnorm(model)
    assert model.head_pool_kernel == (4, 1, 1)
    save_config(cfg, tmp_path / "config.yaml")
    checkpoint = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(cfg, class_names=None)},
                                 tmp_path / "c.pt")

    def evaluate(name, *overrides):
        out = tmp_path / name
        assert main(["eval", "--config", str(tmp_path / "config.yaml"), "--checkpoint", str(checkpoint),
                     "eval.num_clips=1", f"runtime.output_dir={out}", *overrides]) == 0
        metrics = json.loads((out / "eval" / "metrics.json").read_text())
        with open(out / "eval" / "predictions.csv") as f:
            return metrics, [float(row["prob_label"]) for row in csv.DictReader(f)]

    global_head = "model.options.head_pool_input=null"
    metrics, windowed = evaluate("full", "data.crop_size=48", "eval.num_crops=3")
    assert (metrics["crop_size"], metrics["eval_num_crops"]) == (48, 3)
    _, pooled = evaluate("full_global", "data.crop_size=48", "eval.num_crops=3", global_head)
    assert max(abs(a - b) for a, b in zip(windowed, pooled)) > 1e-4  # four windows, not one global average
    _, at_train = evaluate("train_size", "eval.num_crops=3")
    _, at_train_global = evaluate("train_size_global", "eval.num_crops=3", global_head)
    assert at_train == pytest.approx(at_train_global, abs=2e-6)  # one window: the same head
    # predict through the Python API: the same recipe override feeds 48² crops to the same head
    from snl_video.engine.api import load_model, predict

    loaded = load_model(checkpoint=checkpoint, overrides=["data.crop_size=48"])
    assert loaded.input_spec.crop_size == 48 and loaded.model.head_pool_kernel == (4, 1, 1)
    video = sorted((tiny_prepared.parent / "raw" / "UCF-101").rglob("*.avi"))[0]
    result = predict([video], model=loaded, num_clips=1, num_crops=3)
    (prediction,) = result.predictions
    assert abs(float(prediction.probabilities.sum()) - 1) < 1e-5
