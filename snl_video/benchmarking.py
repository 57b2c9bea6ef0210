"""Timing and memory measurement shared by the benchmarks (``scripts/bench_*.py``).

Memory: on CUDA the real peak (``torch.cuda.max_memory_allocated``) of a forward+backward;
on CPU, where PyTorch keeps no allocator statistics, the bytes of the tensors autograd
saves for the backward pass (counted with ``saved_tensors_hooks``, each storage once). That
is the term that grows with ``N²`` for a dense affinity and with ``N`` for a factorised
one, and it is exact and repeatable, unlike a process RSS.

The sweeps over block kinds and map sizes that the scripts print (``bench_nonlocal`` and
friends) live beside those scripts, in ``scripts/nonlocal_sweeps.py``; this module keeps
the measurement primitives they, the memory benchmarks and the tests share.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = [
    "Measurement",
    "available_memory_bytes",
    "count_parameters",
    "current_rss_bytes",
    "format_table",
    "measure_step",
    "peak_rss_bytes",
    "saved_tensor_bytes",
    "synchronize",
]


@dataclass
class Measurement:
    """Median wall time of one step (ms) and its memory (bytes, see module doc)."""

    time_ms: float
    memory_bytes: int
    memory_kind: str


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_tensor_bytes(step: Callable[[], Tensor]) -> int:
    """Bytes of the distinct storages autograd saves while ``step()`` runs its forward."""
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # pragma: no cover - exotic tensors
            seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = step()
    del out
    return sum(seen.values())


def measure_step(
    forward: Callable[[], Tensor],
    *,
    device: torch.device,
    warmup: int = 1,
    repeats: int = 5,
    min_time_s: float = 0.0,
    slow_step_s: float = 20.0,
) -> Measurement:
    """Time ``forward().sum().backward()`` (median of ``repeats``) and measure its memory.

    When a warm-up step takes longer than ``slow_step_s``, one timed step is taken.
    """

    def step() -> None:
        forward().float().sum().backward()

    warm_start = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    if warmup and (time.perf_counter() - warm_start) / warmup > slow_step_s:
        repeats = 1  # a step this slow is its own average; keep the benchmark bounded
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time_s:
        t0 = time.perf_counter()
        step()
        synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        memory, kind = torch.cuda.max_memory_allocated(device) - base, "cuda_peak"
    else:
        memory, kind = saved_tensor_bytes(forward), "saved_for_backward"
    return Measurement(statistics.median(times), memory, kind)


def available_memory_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA free memory, or the OS's MemAvailable on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return 2**62


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux ``VmHWM``), 0 where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return 0


def current_rss_bytes() -> int:
    """This process's resident set size now (Linux ``VmRSS``), 0 where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return 0


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table: ``columns`` are (key, header, format spec)."""
    header = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [header, rule]
    for r in rows:
        cells = []
        for key, _, spec in columns:
            value = r.get(key)
            if value is None:
                cells.append(r.get("skipped", "") if key == "time_ms" else "")
            else:
                cells.append(format(value, spec) if spec else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
