"""``snl-video demo``: the main job on a small embedded default.

Until the end-to-end UCF-101 demo lands, the demo checks the heart of the toolkit on this
machine: it builds every non-local kind, verifies that each starts as the identity and
that the linear-time SNL equals the dense one, then benchmarks the family on small maps
and writes the table to ``runs/demo/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import torch

from ..benchmarking import bench_nonlocal, format_table
from ..nonlocal_blocks import build_nonlocal, list_nonlocal_kinds

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the main job on a small embedded default")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.set_defaults(func=run)


def _self_check() -> list[str]:
    lines = []
    torch.manual_seed(0)
    x = torch.randn(2, 64, 4, 7, 7, dtype=torch.float64)
    for kind in list_nonlocal_kinds():
        block = build_nonlocal(kind, 64).double()
        identity = torch.equal(block(x), x)
        lines.append(f"{kind:7s} identity at init: {'yes' if identity else 'NO'}")
        if not identity:
            raise RuntimeError(f"{kind} block is not the identity at initialisation")
    dense = build_nonlocal("snl", 64, impl="dense").double()
    linear = build_nonlocal("snl", 64, impl="linear").double()
    linear.load_state_dict(dense.state_dict())
    for b in (dense, linear):
        torch.nn.init.ones_(b.bn.weight)
    diff = (dense(x) - linear(x)).abs().max().item()
    lines.append(f"snl dense vs linear, max |diff| (float64): {diff:.2e}")
    if diff > 1e-10:
        raise RuntimeError(f"linear SNL differs from dense SNL by {diff}")
    return lines


def run(args: argparse.Namespace) -> int:
    logger.info("self-check of the non-local family")
    check = _self_check()
    for line in check:
        logger.info("  %s", line)
    logger.info("benchmark: forward+backward of every kind, C=256, C_s=128, N = 98 .. 1,568")
    rows = bench_nonlocal(
        kinds=list_nonlocal_kinds(), shapes=[(2, 7, 7), (4, 14, 14), (8, 14, 14)], channels=256, repeats=3
    )
    for r in rows:
        if "memory_bytes" in r:
            r["memory_mb"] = r["memory_bytes"] / 2**20
    rows.sort(key=lambda r: (r["N"], r["kind"]))
    table = format_table(
        rows,
        [
            ("kind", "kind", ""),
            ("N", "N", ",d"),
            ("time_ms", "fwd+bwd ms", ".1f"),
            ("memory_mb", "saved MB", ".2f"),
            ("time_vs_nl", "time / NL", ".2f"),
            ("dense_over_linear_time", "SNL dense/linear", ".1f"),
        ],
    )
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("nonlocal_check.txt", "\n".join(check) + "\n"),
        ("bench_nonlocal.md", table + "\n"),
        ("bench_nonlocal.json", json.dumps(rows, indent=1)),
    ):
        tmp = args.out / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out / name)
    logger.info("outputs written to %s/", args.out)
    return 0
