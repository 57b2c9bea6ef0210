"""snl_video.utilisation: percentiles against numpy, FLOPs against the convolution formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from snl_video.utilisation import (
    TRAIN_STEP_FORWARDS,
    forward_flops,
    measure_matmul_peak,
    percentile,
    step_time_stats,
    time_calls,
)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 21, 100])
def test_percentiles_match_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    # step times with a heavy tail, as a denormal storm gives
    values = list(np.concatenate([rng.uniform(0.6, 0.8, n - n // 5), rng.uniform(20, 40, n // 5)]))
    for q in (0, 5, 50, 90, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-15)
    stats = step_time_stats(values)
    assert stats["steps"] == n
    assert stats["p50_s"] == pytest.approx(float(np.median(values)), rel=1e-12)
    assert stats["p95_s"] == pytest.approx(float(np.percentile(values, 95)), rel=1e-12)
    assert stats["max_s"] == max(values)
    assert stats["mean_s"] == pytest.approx(float(np.mean(values)), rel=1e-12)
    assert stats["p95_over_p50"] == pytest.approx(stats["p95_s"] / stats["p50_s"])


def test_percentile_is_order_free_and_rejects_bad_input() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], 101)


def test_forward_flops_are_twice_the_convolution_macs() -> None:
    c_in, c_out, k, t, h, w = 3, 8, 3, 4, 10, 12
    model = nn.Sequential(nn.Conv3d(c_in, c_out, k, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(c_out * t * h * w, 5))
    x = torch.randn(2, c_in, t, h, w)
    conv_macs = 2 * c_out * t * h * w * c_in * k**3  # batch 2, every output element: c_in·k³ products
    linear_macs = 2 * c_out * t * h * w * 5
    model.train()
    assert forward_flops(model, x) == 2 * (conv_macs + linear_macs)
    assert model.training  # mode restored
    assert TRAIN_STEP_FORWARDS == 3


def test_time_calls_and_the_matmul_peak_are_measured() -> None:
    calls: list[int] = []
    times = time_calls(lambda: calls.append(1), device=torch.device("cpu"), steps=4, warmup=2)
    assert len(times) == 4 and len(calls) == 6 and all(s >= 0 for s in times)
    peak = measure_matmul_peak("cpu", torch.float32, size=64, seconds=0.0)
    assert math.isfinite(peak) and peak > 0
