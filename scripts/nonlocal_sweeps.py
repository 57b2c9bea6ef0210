"""Sweeps of the non-local benchmarks: every kind (and SNL filter) over map sizes, one block at a
large map, the SNL operator alone, and the transform-domain family against NL and SNL.

Used by ``scripts/bench_nonlocal.py`` (run as a script, this folder is on ``sys.path``) and
tested by ``tests/test_benchmarking.py``. The measurement primitives they are built from
(timing, saved-for-backward bytes, RSS, the Markdown table) are the library's
:mod:`snl_video.benchmarking`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from snl_video.benchmarking import (
    available_memory_bytes,
    current_rss_bytes,
    measure_step,
    peak_rss_bytes,
    saved_tensor_bytes,
    synchronize,
)
from snl_video.nonlocal_blocks import build_nonlocal, resolve_impl, spectral_affinity

logger = logging.getLogger(__name__)

__all__ = [
    "DENSE_MATRICES_ALIVE",
    "SNL_FILTER_VARIANTS",
    "SPECTRAL_FAMILY_VARIANTS",
    "bench_nonlocal",
    "bench_one_large",
    "bench_snl_operator",
    "bench_spectral_family",
    "time_block_row",
]


def time_block_row(block: Any, x: torch.Tensor, row: dict[str, Any], rows: list[dict[str, Any]], *,
                    device: torch.device, repeats: int, on_row: Any = None) -> None:
    """Time ``block(x)`` forward+backward and append ``row`` with the measurement (or with
    ``skipped: out of memory``) to ``rows``; shared by the graph-kind and transform-kind sweeps."""
    try:
        m = measure_step(lambda: block(x), device=device, repeats=repeats)
        rows.append({**row, **asdict(m)})
        if on_row is not None:
            on_row(rows[-1])
    except torch.OutOfMemoryError:
        rows.append({**row, "skipped": "out of memory"})
    finally:
        x.grad = None


# Peak number of N×N matrices alive in a forward+backward of a quadratic block: autograd
# saves ~1.3 (NL, NS, DNL) or ~3.3 (dense SNL) of them (saved_tensor_bytes at small N),
# and the backward creates about two more transient ones. Used to skip sizes that
# cannot fit instead of being killed by the OOM killer.
DENSE_MATRICES_ALIVE = {"snl": 6, "default": 4, "snl_filter": 10}

#: The spectral family's `snl` filters measured by `bench_nonlocal(snl_filters=...)`, each on
#: the dense and the linear path (rows `snl_<name>_dense`, `snl_<name>_linear`).
SNL_FILTER_VARIANTS: dict[str, dict[str, Any]] = {
    "order3": {"order": 3},
    "cayley": {"filter": "cayley"},
    "cayley_jacobi": {"filter": "cayley", "solver": "jacobi"},
    "cayley_official": {"filter": "cayley_official"},
    "arma": {"filter": "arma"},
    "arma_exact": {"filter": "arma", "solver": "exact", "feedback": "diagonal", "activation_inner": "none"},
}
#: Per-channel dense solves cost O(C_s·N³): the dense ARMA-exact row stops here.
MAX_DENSE_PER_CHANNEL_SOLVE_NODES = 1568


def bench_nonlocal(
    *,
    kinds: Sequence[str],
    shapes: Iterable[tuple[int, int, int]],
    channels: int = 256,
    inter_channels: int | None = None,
    batch: int = 1,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = 3,
    max_dense_nodes: int | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    snl_filters: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Forward+backward time and memory of each non-local kind at each map size.

    ``snl`` is measured twice, ``impl="dense"`` and ``impl="linear"`` (rows ``snl`` and
    ``snl_linear``). Kinds whose cost grows with N² are skipped above ``max_dense_nodes``
    (recorded as skipped, not silently dropped), and so are sizes whose N×N matrices
    would not fit in the free memory. ``on_row`` sees each measurement as it is taken
    (e.g. to append it to a file, so a long run that is killed keeps what it measured).
    ``snl_filters`` (names of :data:`SNL_FILTER_VARIANTS`) adds each of those ``snl``
    filters on both paths, with ``time_vs_snl_linear`` / ``memory_vs_snl_linear``: the
    ratio to the linear first-order SNL measured in the same run (``snl`` is then
    measured too, as that baseline). Returns one dict per (kind, shape).
    """
    from tqdm.auto import tqdm

    dev = torch.device(device)
    cs = inter_channels or channels // 2
    variants: list[tuple[str, str, dict[str, Any]]] = []
    unknown = sorted(set(snl_filters) - set(SNL_FILTER_VARIANTS))
    if unknown:
        raise ValueError(f"unknown snl filter variant(s) {unknown}; valid: {', '.join(SNL_FILTER_VARIANTS)}")
    if snl_filters and "snl" not in kinds:
        kinds = [*kinds, "snl"]
    for kind in kinds:
        if kind == "snl":
            variants += [("snl_dense", "snl", {"impl": "dense"}), ("snl_linear", "snl", {"impl": "linear"})]
        else:
            variants.append((kind, kind, {}))
    for name in snl_filters:
        for impl in ("dense", "linear"):
            variants.append((f"snl_{name}_{impl}", "snl", {**SNL_FILTER_VARIANTS[name], "impl": impl}))
    shapes = list(shapes)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(shapes) * len(variants), disable=not progress, desc="non-local bench")
    for shape in shapes:
        nodes = shape[0] * shape[1] * shape[2]
        x = torch.randn(batch, channels, *shape, device=dev, dtype=dtype, requires_grad=True)
        for label, kind, options in variants:
            bar.set_postfix_str(f"{label} N={nodes}")
            quadratic = kind in ("nl", "ns", "dnl") or options.get("impl") == "dense"
            row: dict[str, Any] = {"kind": label, "T": shape[0], "H": shape[1], "W": shape[2], "N": nodes}
            if quadratic and max_dense_nodes is not None and nodes > max_dense_nodes:
                rows.append({**row, "skipped": f"N > max_dense_nodes={max_dense_nodes}"})
                bar.update()
                continue
            if quadratic and name_is_per_channel_dense(label) and nodes > MAX_DENSE_PER_CHANNEL_SOLVE_NODES:
                rows.append({**row, "skipped": "O(C_s·N³) per-channel dense solves"})
                bar.update()
                continue
            alive = DENSE_MATRICES_ALIVE.get(kind, DENSE_MATRICES_ALIVE["default"])
            if len(options) > 1:
                alive = DENSE_MATRICES_ALIVE["snl_filter"]
            need = alive * batch * nodes * nodes * torch.finfo(dtype).bits // 8
            if quadratic and need > 0.8 * available_memory_bytes(dev):
                rows.append({**row, "skipped": f"needs ~{need / 2**30:.0f} GiB for N×N matrices"})
                logger.warning("skipping %s at N=%d: needs ~%.0f GiB", label, nodes, need / 2**30)
                bar.update()
                continue
            torch.manual_seed(0)
            block = build_nonlocal(kind, channels, inter_channels=cs, **options).to(dev, dtype)
            with torch.no_grad():
                # Measure a trained-looking block, not the identity it starts as (the work
                # is the same, but gradients then reach every parameter, as in training).
                block.out_norm.weight.fill_(1.0)
            time_block_row(block, x, row, rows, device=dev, repeats=repeats, on_row=on_row)
            bar.update()
    bar.close()
    # Ratios against baselines measured in the same run.
    by_key = {(r["kind"], r["N"]): r for r in rows}
    for r in rows:
        if "time_ms" not in r:
            continue
        nl = by_key.get(("nl", r["N"]))
        if nl is not None and "time_ms" in nl:
            r["time_vs_nl"] = r["time_ms"] / nl["time_ms"]
        if r["kind"] == "snl_linear":
            dense = by_key.get(("snl_dense", r["N"]))
            if dense is not None and "time_ms" in dense:
                r["dense_over_linear_time"] = dense["time_ms"] / r["time_ms"]
                r["dense_over_linear_memory"] = dense["memory_bytes"] / max(r["memory_bytes"], 1)
            r["auto_picks"] = resolve_impl("auto", r["N"], cs)
        base = by_key.get(("snl_linear", r["N"]))
        if snl_filters and base is not None and "time_ms" in base:
            r["time_vs_snl_linear"] = r["time_ms"] / base["time_ms"]
            r["memory_vs_snl_linear"] = r["memory_bytes"] / max(base["memory_bytes"], 1)
    return rows


def name_is_per_channel_dense(label: str) -> bool:
    """Rows whose dense path solves one N×N system per channel (ARMA's exact fixed point)."""
    return label.startswith("snl_arma_exact") and label.endswith("_dense")


def bench_one_large(
    kind: str,
    options: dict[str, Any],
    *,
    shape: tuple[int, int, int] = (64, 56, 56),
    channels: int = 256,
    inter_channels: int = 128,
    device: str = "cpu",
) -> dict[str, Any]:
    """One forward+backward of one block at a large map (default N = 200,704), timed once.

    Memory: on CUDA the allocator's peak above the input; on CPU the process's peak RSS
    growth over the step (run it in a fresh process so earlier work does not hide it) and
    the bytes autograd saves. Meant for the linear path only.
    """
    dev = torch.device(device)
    torch.manual_seed(0)
    block = build_nonlocal(kind, channels, inter_channels=inter_channels, **options).to(dev)
    with torch.no_grad():
        block.out_norm.weight.fill_(1.0)
    x = torch.randn(1, channels, *shape, device=dev, requires_grad=True)
    row: dict[str, Any] = {"kind": kind, "options": options, "N": shape[0] * shape[1] * shape[2], "C": channels,
                           "C_s": inter_channels}
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = current_rss_bytes()
    t0 = time.perf_counter()
    block(x).float().sum().backward()
    synchronize(dev)
    row["time_s"] = time.perf_counter() - t0
    if dev.type == "cuda":
        row["peak_bytes"], row["memory_kind"] = torch.cuda.max_memory_allocated(dev) - base, "cuda_peak"
    else:
        row["peak_bytes"], row["memory_kind"] = peak_rss_bytes() - base, "peak_rss_growth"
        x.grad = None
        row["saved_bytes"] = saved_tensor_bytes(lambda: block(x))
    return row


def bench_snl_operator(
    *,
    shapes: Iterable[tuple[int, int, int]],
    inter_channels: int = 128,
    batch: int = 1,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Forward+backward of the SNL graph part alone: build ``A`` from θ, φ and apply ``Z W1 + A Z W2``'s ``A Z``.

    The block-level ratio dense/linear is bounded by the 1×1×1 projections both paths
    share (``~5·N·C·C_s`` multiply-adds); this isolates what the factorisation changes.
    """
    dev = torch.device(device)
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        nodes = shape[0] * shape[1] * shape[2]
        theta, phi, z = (
            torch.randn(batch, nodes, inter_channels, device=dev, dtype=dtype, requires_grad=True) for _ in range(3)
        )
        row: dict[str, Any] = {"T": shape[0], "H": shape[1], "W": shape[2], "N": nodes, "C_s": inter_channels}
        for impl in ("dense", "linear"):
            need = DENSE_MATRICES_ALIVE["snl"] * batch * nodes * nodes * torch.finfo(dtype).bits // 8
            if impl == "dense" and need > 0.8 * available_memory_bytes(dev):
                row["dense_skipped"] = f"needs ~{need / 2**30:.0f} GiB"
                continue
            m = measure_step(
                lambda: spectral_affinity(theta, phi, impl=impl).matmul(z), device=dev, repeats=repeats  # noqa: B023
            )
            row[f"{impl}_ms"] = m.time_ms
            row[f"{impl}_memory_bytes"] = m.memory_bytes
        if "dense_ms" in row:
            row["dense_over_linear_time"] = row["dense_ms"] / row["linear_ms"]
            row["dense_over_linear_memory"] = row["dense_memory_bytes"] / max(row["linear_memory_bytes"], 1)
        rows.append(row)
    return rows


# The transform-domain blocks against NL and linear SNL: (label, kind, options). BAT's `ts`
# is set per map (the largest of 4, 2, 1 dividing T), as a placement would have to.
SPECTRAL_FAMILY_VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("nl", "nl", {}),
    ("snl_linear", "snl", {"impl": "linear"}),
    ("srb_fft", "srb", {}),
    ("srb_fft_conv", "srb", {"temporal": "conv"}),
    ("srb_fft3d", "srb", {"temporal": "fft3d"}),
    ("srb_lo", "srb", {"transform": "lo"}),
    ("srb_lo_conv", "srb", {"transform": "lo", "temporal": "conv"}),
    ("bat", "bat", {}),
    ("bat_2d", "bat", {"tk": 0}),
)


def _trained_looking(block: nn.Module) -> None:
    """Leave the identity start so gradients reach every parameter, as in training."""
    with torch.no_grad():
        if hasattr(block, "out_norm"):
            block.out_norm.weight.fill_(1.0)
        if hasattr(block, "alpha"):
            block.alpha.fill_(1.0)


def bench_spectral_family(
    *,
    maps: Sequence[tuple[str, int, tuple[int, int, int]]],
    variants: Sequence[tuple[str, str, dict[str, Any]]] = SPECTRAL_FAMILY_VARIANTS,
    batch: int = 1,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = 3,
    max_dense_nodes: int | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Forward+backward time and memory of SRB / BAT variants against NL and linear SNL.

    ``maps`` are ``(name, channels, (T, H, W))``, e.g. ``("r3d50 res4", 1024, (2, 7, 7))``.
    NL (O(N²)) is skipped above ``max_dense_nodes`` or when its N×N matrices would not fit,
    and recorded as skipped. Ratios ``time_vs_nl`` / ``memory_vs_nl`` (and ``_vs_snl``) are
    against the baselines of the same map, measured in the same run.
    """
    from tqdm.auto import tqdm

    dev = torch.device(device)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(maps) * len(variants), disable=not progress, desc="spectral family bench")
    for name, channels, shape in maps:
        nodes = shape[0] * shape[1] * shape[2]
        x = torch.randn(batch, channels, *shape, device=dev, dtype=dtype, requires_grad=True)
        for label, kind, options in variants:
            bar.set_postfix_str(f"{label} {name}")
            row: dict[str, Any] = {"map": name, "kind": label, "C": channels, "T": shape[0], "H": shape[1],
                                   "W": shape[2], "N": nodes}
            options = dict(options)
            if kind == "nl":
                need = DENSE_MATRICES_ALIVE["default"] * batch * nodes * nodes * torch.finfo(dtype).bits // 8
                if max_dense_nodes is not None and nodes > max_dense_nodes:
                    rows.append({**row, "skipped": f"N > max_dense_nodes={max_dense_nodes}"})
                    bar.update()
                    continue
                if need > 0.8 * available_memory_bytes(dev):
                    rows.append({**row, "skipped": f"needs ~{need / 2**30:.0f} GiB for N×N matrices"})
                    bar.update()
                    continue
            if kind == "srb" and options.get("transform") == "lo":
                options["spatial_size"] = shape[1:]
            if kind == "bat" and options.get("tk", 4) > 0:
                options["ts"] = next(ts for ts in (4, 2, 1) if shape[0] % ts == 0)
            torch.manual_seed(0)
            block = build_nonlocal(kind, channels, **options).to(dev, dtype)
            _trained_looking(block)
            time_block_row(block, x, row, rows, device=dev, repeats=repeats, on_row=on_row)
            bar.update()
    bar.close()
    by_key = {(r["map"], r["kind"]): r for r in rows}
    for r in rows:
        if "time_ms" not in r:
            continue
        for base, suffix in (("nl", "nl"), ("snl_linear", "snl")):
            ref = by_key.get((r["map"], base))
            if ref is not None and "time_ms" in ref:
                r[f"time_vs_{suffix}"] = r["time_ms"] / ref["time_ms"]
                r[f"memory_vs_{suffix}"] = r["memory_bytes"] / max(ref["memory_bytes"], 1)
    return rows
