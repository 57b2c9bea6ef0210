"""predict's one decoding pass: every window of a timeline (and every whole-video score)
equals the per-clip reader's, for each backend, on a video with B-frames; results stream to
``--out`` as they are made."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from snl_video.data.decoding import available_backends, read_frames
from snl_video.data.synthetic import encode_avi
from snl_video.data.transforms import input_transform
from snl_video.engine import predict as predict_module
from snl_video.engine.loading import InferenceModel
from snl_video.engine.predict import predict, window_clips
from snl_video.inputspec import InputSpec
from snl_video.models import build_model

from ..helpers import moving_frames


@pytest.fixture(scope="module")
def bframe_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "ipb.avi"
    encode_avi(moving_frames(60, height=48, width=64, seed=5), path, gop_size=10, max_b_frames=2)
    return path


@pytest.fixture(scope="module")
def loaded():
    torch.manual_seed(0)
    model = build_model("r3d18", num_classes=5, nonlocal_blocks="snl", widen_factor=0.125).eval()
    torch.nn.init.normal_(model.fc.weight, std=2.0)
    spec = InputSpec(num_frames=4, sampling_stride=2, crop_size=32, mean=(0.45,) * 3, std=(0.225,) * 3)
    return InferenceModel(model, "r3d18", [f"c{i}" for i in range(5)], spec, num_clips=3, num_crops=3,
                          reduce="mean_prob", source="test")


def _expected_windows(path, loaded, *, window_s, stride_s, backend, crops):
    """Each window as the per-clip reader scored it: every clip read on its own, transformed,
    one forward per window, softmax averaged over clips x crops."""
    transform = input_transform(loaded.input_spec, crops=crops)
    windows, clips = window_clips(60, 25.0, window_s=window_s, stride_s=stride_s, num_frames=4, sampling_stride=2)
    per = len(clips) // len(windows)
    out = []
    for w, (start, frames) in enumerate(windows):
        views = [transform(read_frames(path, clip, backend=backend)) for clip in clips[w * per:(w + 1) * per]]
        x = torch.cat([v if v.ndim == 5 else v[None] for v in views])
        with torch.no_grad():
            out.append((start / 25, (start + frames) / 25, torch.softmax(loaded.model(x), 1).mean(0).numpy()))
    return out


@pytest.mark.parametrize("backend", available_backends())
def test_every_window_equals_the_per_clip_reader(bframe_video, loaded, backend):
    expected = _expected_windows(bframe_video, loaded, window_s=0.8, stride_s=0.24, backend=backend, crops=3)
    # batch_size 5 with 2 clips x 3 crops per window: batches straddle windows
    result = predict(bframe_video, model=loaded, window_seconds=0.8, stride_seconds=0.24, backend=backend, batch_size=5, num_crops=3)
    assert not result.errors
    assert len(result.predictions) == len(expected) > 5
    for pred, (start_s, end_s, probs) in zip(result.predictions, expected):
        assert (pred.start_s, pred.end_s) == pytest.approx((start_s, end_s))
        np.testing.assert_allclose(pred.probabilities, probs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", available_backends())
def test_whole_video_views_equal_the_per_clip_reader(bframe_video, loaded, backend):
    from snl_video.data.sampling import uniform_clips

    transform = input_transform(loaded.input_spec, crops=3)
    views = [transform(read_frames(bframe_video, c, backend=backend)) for c in uniform_clips(60, num_frames=4, stride=2,
                                                                                           num_clips=3)]
    with torch.no_grad():
        expected = torch.softmax(loaded.model(torch.cat(views)), 1).mean(0).numpy()
    (pred,) = predict(bframe_video, model=loaded, backend=backend).predictions
    np.testing.assert_allclose(pred.probabilities, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_rows_stream_out_and_an_interrupted_run_keeps_them(bframe_video, loaded, tmp_path, monkeypatch, suffix):
    out = tmp_path / f"timeline{suffix}"
    full = predict(bframe_video, model=loaded, window_seconds=0.8, stride_seconds=0.24, num_crops=1, output_file=out, top_k=2)
    complete = out.read_text()
    assert complete == (full.csv_text() if suffix == ".csv" else json.dumps(full.to_json_dict(), indent=1) + "\n")
    partial = predict_module.partial_path(out)
    assert partial.name == f"timeline.partial{suffix}" and not partial.exists()  # removed once the file is complete

    # the third window's scoring fails: the first two are already in the file
    original = predict_module.probabilities_of_views
    calls = []

    def failing(loaded_, logits):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(loaded_, logits)

    monkeypatch.setattr(predict_module, "probabilities_of_views", failing)
    monkeypatch.setattr(predict_module.PredictionWriter, "JSON_EVERY_S", 0.0)  # JSON: rewrite every time
    with pytest.raises(KeyboardInterrupt, match=f"2 prediction.*{partial.name}.*was not changed"):
        predict(bframe_video, model=loaded, window_seconds=0.8, stride_seconds=0.24, num_crops=1, output_file=out, top_k=2)
    assert out.read_text() == complete  # the earlier run's complete file is untouched
    if suffix == ".csv":
        rows = list(csv.reader(partial.read_text().splitlines()))
        assert rows == list(csv.reader(complete.splitlines()))[:1 + 2 * 2]  # header + 2 windows x top-2
    else:
        kept = json.loads(partial.read_text())["predictions"]
        assert kept == json.loads(complete)["predictions"][:2]


def test_bf16_is_refused_where_the_cpu_would_emulate_it(loaded, monkeypatch):
    from snl_video.engine import precision
    from snl_video.errors import InvalidValueError

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(InvalidValueError, match="no native bf16.*--precision fp32"):
        precision.autocast_dtype("bf16", "cpu")
    with pytest.raises(InvalidValueError, match="choose one of fp32, bf16"):
        precision.autocast_dtype("fp16", "cpu")
    assert precision.autocast_dtype("fp32", "cpu") is None


@pytest.mark.skipif(not __import__("snl_video.engine.precision", fromlist=["x"]).cpu_has_native_bf16(),
                    reason="this CPU has no native bf16")
def test_bf16_predict_is_the_fp32_prediction_within_bf16_rounding(bframe_video, loaded):
    fp32 = predict(bframe_video, model=loaded, window_seconds=0.8, stride_seconds=0.48, num_crops=1, precision="fp32")
    try:
        bf16 = predict(bframe_video, model=loaded, window_seconds=0.8, stride_seconds=0.48, num_crops=1, precision="bf16")
        assert loaded.channels_last and loaded.amp_dtype == torch.bfloat16
    finally:
        loaded.set_precision("fp32")
    a = np.stack([p.probabilities for p in fp32.predictions])
    b = np.stack([p.probabilities for p in bf16.predictions])
    assert not np.array_equal(a, b)  # bf16 really ran
    # bf16 keeps 8 bits of mantissa: a few 1e-2 on probabilities through a small random network
    np.testing.assert_allclose(b, a, atol=0.05)


def test_channels_last_by_default_follows_the_measured_families(monkeypatch):
    from snl_video.engine import precision

    monkeypatch.setattr(precision, "FP32_CHANNELS_LAST_ON_CPU", ("r3d",))
    assert precision.channels_last_by_default("r3d50", "fp32", "cpu")
    assert not precision.channels_last_by_default("i3d_r50", "fp32", "cpu")
    assert precision.channels_last_by_default("i3d_r50", "bf16", "cpu")
    assert not precision.channels_last_by_default("r3d50", "bf16", "cuda")
