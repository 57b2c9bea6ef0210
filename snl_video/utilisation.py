"""How much of the machine a model uses: step-time percentiles, achieved FLOP/s, a measured peak.

The benchmarks (``scripts/bench_train.py``, ``scripts/bench_utilisation.py``) report

* **step times** as p50 / p95 / max over the timed steps (:func:`step_time_stats`): a mean
  hides the rare slow step (a denormal storm, a loader stall) that a p95 or max shows;
* **achieved FLOP/s** = FLOPs of the work ÷ its p50 time. FLOPs are ``2 × MACs`` of the
  project's counter (:func:`snl_video.models.profiling.count_macs`: convolutions, linear
  layers and every matrix product, the non-local affinity products included; element-wise
  ops, norms and FFTs not counted). A training step counts as
  :data:`TRAIN_STEP_FORWARDS` = 3 forwards (the backward pass ≈ 2 forwards: gradients with
  respect to the inputs and to the weights), the usual convention of MFU figures;
* **the fraction of peak** (on a GPU: MFU) against a peak *measured in the same run* by a
  large square matrix product in the same precision (:func:`measure_matmul_peak`), not a
  datasheet number: on the CPU it is what the BLAS reaches with the threads the benchmark
  uses, so the fraction is "how close to the best dense kernel this machine runs".
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["TRAIN_STEP_FORWARDS", "percentile", "step_time_stats", "measure_matmul_peak", "forward_flops",
           "time_calls"]

#: A training step's FLOPs in forwards: forward (1) + backward (≈ 2: input and weight gradients).
TRAIN_STEP_FORWARDS = 3


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation between order statistics.

    The rank of the percentile is ``q/100 · (n − 1)`` in the sorted values (numpy's default,
    ``method="linear"``); so p50 of an even count is the mean of the middle two.
    """
    if not values:
        raise ValueError("percentile of no values: time at least one step")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(float(v) for v in values)
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def step_time_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, max and mean of per-step times, the step count, and ``p95 / p50`` (1 when steady)."""
    p50 = percentile(seconds, 50)
    p95 = percentile(seconds, 95)
    return {"steps": len(seconds), "p50_s": p50, "p95_s": p95, "max_s": max(seconds),
            "mean_s": sum(seconds) / len(seconds), "p95_over_p50": p95 / p50 if p50 > 0 else math.inf}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], *, device: torch.device, steps: int, warmup: int = 1) -> list[float]:
    """Wall seconds of each of ``steps`` calls of ``fn`` after ``warmup`` untimed ones (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    _synchronize(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def measure_matmul_peak(device: torch.device | str, dtype: torch.dtype, *, size: int = 0,
                        seconds: float = 1.0) -> float:
    """FLOP/s of a square ``size × size`` matrix product in ``dtype`` on ``device`` (best of repeats).

    ``size`` 0 picks 2048 on the CPU and 8192 on a GPU: large enough for the BLAS to reach its
    steady rate, small enough to take about ``seconds``. Counts ``2·size³`` FLOPs per product.
    """
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.mm(a, b)  # warm-up: library dispatch, AMX tile set-up, cuBLAS handles
    _synchronize(device)
    best = math.inf
    spent = 0.0
    repeats = 0
    while repeats < 3 or spent < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)
        elapsed = time.perf_counter() - t0
        best, spent, repeats = min(best, elapsed), spent + elapsed, repeats + 1
        if repeats >= 50:
            break
    return 2 * size**3 / best


def forward_flops(model: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs (2 × MACs, :func:`~snl_video.models.profiling.count_macs`) of one ``model(inputs)``.

    Counted in eval mode and float32 (the count depends on shapes only); the model's mode is restored.
    """
    from .models.profiling import count_macs

    was_training = model.training
    model.eval()
    try:
        macs, _ = count_macs(model, inputs.float())
    finally:
        model.train(was_training)
    return 2 * macs
