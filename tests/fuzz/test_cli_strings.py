"""Fuzzing the strings users type for ``explain --query t,y,x`` and ``predict --window/--stride``.

``--query`` goes through ``snl_video.engine.explain.parse_query`` (and ``check_query`` against
the clip); ``--window``/``--stride`` are floats from argparse (so also ``nan``/``inf``) handed to
``snl_video.engine.predict.predict``. Property: a result, or the project's one-line error.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from snl_video.data.synthetic import encode_avi
from snl_video.engine.explain import check_query, parse_query
from snl_video.engine.loading import InferenceModel
from snl_video.engine.predict import predict
from snl_video.inputspec import InputSpec

from .errors import fewer_examples, only_project_errors

query_parts = st.one_of(st.integers(-5, 300).map(str), st.sampled_from(["", " ", "a", "1.5", "-", "--1", "٣", "1e2",
                                                                        "0x1", "+2", "9" * 30]))


@given(text=st.one_of(
    st.lists(query_parts, min_size=0, max_size=5).flatmap(
        lambda parts: st.sampled_from([",", ", ", " ,", ";"]).map(lambda sep: sep.join(parts))),
    st.text(max_size=20),
))
def test_query_strings(text):
    with only_project_errors():
        query = parse_query(text)
        assert len(query) == 3 and all(isinstance(v, int) for v in query)
        check_query(query, (8, 112, 112))


class _Mean(nn.Module):
    """A 3-class head on the clip's mean colour: enough for the predict pipeline."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x.mean((2, 3, 4)))


@pytest.fixture(scope="module")
def tiny_video_and_model():
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "a clip ü.avi"
        rng = np.random.default_rng(0)
        encode_avi(rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8), video, fps=10)
        spec = InputSpec(num_frames=4, sampling_stride=1, crop_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
        model = InferenceModel(_Mean().eval(), "tiny", ["a", "b", "c"], spec, num_clips=1, num_crops=1,
                               reduce="mean_prob", source="test")
        yield video, model


seconds = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, -1.0, 1e-9, 0.1, 0.5, 1.0, 2.0, 1e12, 1e308, 5e-324, math.inf, math.nan]))


@fewer_examples(0.6)
@given(window=seconds, stride=seconds)
def test_window_and_stride(tiny_video_and_model, window, stride):
    video, model = tiny_video_and_model
    valid = (window is None) == (stride is None) and (window is None or (0 < window < math.inf and 0 < stride < math.inf))
    with only_project_errors():
        result = predict([video], model=model, window_seconds=window, stride_seconds=stride, top_k=2)
        # nan / inf / <= 0 are refused up front (they once became a per-video "cannot convert
        # float NaN to integer"); a valid request predicts the readable video
        assert valid, f"window={window}, stride={stride} was accepted"
        assert result.predictions and not result.errors


def test_an_astronomic_window_covers_the_whole_video(tiny_video_and_model):
    # window x fps once overflowed to inf before rounding (found by the long fuzz profile)
    video, model = tiny_video_and_model
    result = predict([video], model=model, window_seconds=1e308, stride_seconds=1e308, top_k=2)
    assert len(result.predictions) == 1 and not result.errors


def test_window_values_come_from_argparse_floats():
    # The strategy above covers what `type=float` lets through: nan and inf are floats too.
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float)
    assert math.isnan(parser.parse_args(["--window", "nan"]).window)
    assert math.isinf(parser.parse_args(["--window", "inf"]).window)
