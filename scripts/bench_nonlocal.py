#!/usr/bin/env python
"""Forward+backward time and memory of every non-local kind vs the number of nodes N.

Usage:
    python scripts/bench_nonlocal.py                      # CPU, C=256, C_s=128, N = 98 ... 25,088
    python scripts/bench_nonlocal.py --device cuda --channels 1024
    python scripts/bench_nonlocal.py --quick              # small sizes, a minute on 2 cores
    python scripts/bench_nonlocal.py --kinds nl --snl-filters cayley arma_exact --repeats 1
    python scripts/bench_nonlocal.py --large-only         # linear paths at N = 200,704 (64x56x56)
    python scripts/bench_nonlocal.py --spectral           # srb / bat variants vs nl and linear snl
                                                          # at the res3/res4 maps of r3d50 / i3d_r50
                                                          # (16x112²) and at N = 6,272 and 25,088

The spectral family's `snl` filters (--snl-filters, default all of
scripts/nonlocal_sweeps.SNL_FILTER_VARIANTS) are measured on the dense and the linear path
with their ratio to the linear first-order SNL of the same run. --large (or --large-only)
adds one forward+backward of the linear SNL (order 1) and of each filter at N = 200,704,
each in a fresh process, with its time and peak memory (CUDA peak, or peak RSS growth).

Prints a Markdown table (time, memory, ratio to NL, SNL dense/linear ratios) and writes it
with the raw rows to --output-dir (JSON + Markdown). Memory is the CUDA peak on a GPU and the
bytes saved for backward on CPU (see snl_video.benchmarking).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import torch

from nonlocal_sweeps import (  # scripts/nonlocal_sweeps.py: this folder is on sys.path
    SNL_FILTER_VARIANTS,
    bench_nonlocal,
    bench_one_large,
    bench_snl_operator,
    bench_spectral_family,
)
from snl_video.benchmarking import format_table
from snl_video.commands.renamed import add_renamed_option
from snl_video.nonlocal_blocks import list_nonlocal_kinds

# (T, H, W): the paper's res4 map at 16x112x112 (98 nodes) up to 32x28x28 (25,088).
FULL_SHAPES = [(2, 7, 7), (4, 14, 14), (8, 14, 14), (8, 28, 28), (16, 28, 28), (32, 28, 28)]
QUICK_SHAPES = [(2, 7, 7), (4, 14, 14), (8, 14, 14), (8, 28, 28)]

# (name, C, (T, H, W)) for --spectral: the maps a block sees at 16x112x112 (res3 = layer2,
# res4 = layer3; models/architectures.py strides), then the N sweep's two large sizes.
SPECTRAL_MAPS = [
    ("r3d50 res4", 1024, (2, 7, 7)),
    ("r3d50 res3", 512, (4, 14, 14)),
    ("i3d_r50 res4", 1024, (8, 7, 7)),
    ("i3d_r50 res3", 512, (8, 14, 14)),
    ("N=6,272", 256, (8, 28, 28)),
    ("N=25,088", 256, (32, 28, 28)),
]
SPECTRAL_COLUMNS = [
    ("map", "map", ""),
    ("C", "C", "d"),
    ("N", "N", ",d"),
    ("kind", "kind", ""),
    ("time_ms", "fwd+bwd ms", ".1f"),
    ("memory_mb", "memory MB", ".1f"),
    ("time_vs_nl", "time / NL", ".3f"),
    ("memory_vs_nl", "memory / NL", ".3f"),
    ("time_vs_snl", "time / SNL-linear", ".2f"),
]

COLUMNS = [
    ("kind", "kind", ""),
    ("N", "N", ",d"),
    ("time_ms", "fwd+bwd ms", ".1f"),
    ("memory_mb", "memory MB", ".1f"),
    ("time_vs_nl", "time / NL", ".2f"),
    ("dense_over_linear_time", "SNL dense/linear time", ".1f"),
    ("dense_over_linear_memory", "SNL dense/linear memory", ".1f"),
    ("auto_picks", "auto picks", ""),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--channels", type=int, default=256, help="C (default 256)")
    p.add_argument("--inter-channels", type=int, default=None, help="C_s (default C/2)")
    p.add_argument("--kinds", nargs="+", default=list_nonlocal_kinds("graph"), choices=list_nonlocal_kinds("graph"))
    p.add_argument("--quick", action="store_true", help="N up to 6,272 only")
    p.add_argument("--max-dense-nodes", type=int, default=None, help="skip O(N^2) kinds above this N")
    p.add_argument("--max-nodes", type=int, default=None, help="only map sizes with N up to this")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_renamed_option(p, "--output-dir", "--out", type=Path, default=Path("runs/bench_nonlocal"))
    p.add_argument("--snl-filters", nargs="*", default=list(SNL_FILTER_VARIANTS), choices=list(SNL_FILTER_VARIANTS),
                   help="snl filters measured dense and linear, against linear SNL order 1 (default: all)")
    p.add_argument("--large", action="store_true", help="also the linear paths at N = 200,704 (64x56x56)")
    p.add_argument("--large-only", action="store_true", help="only the N = 200,704 linear-path runs")
    p.add_argument("--large-one", default=None, help=argparse.SUPPRESS)  # internal: one large run, JSON out
    p.add_argument("--spectral", action="store_true", help="srb / bat vs nl and linear snl (SPECTRAL_MAPS)")
    p.add_argument("--maps", nargs="+", default=None, help="with --spectral: only these map names (e.g. 'r3d50 res4')")
    return p.parse_args(argv)


LARGE_SHAPE = (64, 56, 56)  # res2 of a 64-frame 224x224 clip: N = 200,704


def large_variants(filters: list[str]) -> dict[str, dict]:
    return {"snl_linear": {"impl": "linear"},
            **{f"snl_{n}_linear": {**SNL_FILTER_VARIANTS[n], "impl": "linear"} for n in filters}}


def run_large(args: argparse.Namespace) -> str:
    """Each large run in a fresh interpreter (its peak RSS is then its own)."""
    import subprocess

    rows = []
    for label in large_variants(args.snl_filters):
        cmd = [sys.executable, __file__, "--large-one", label, "--device", args.device,
               "--channels", str(args.channels), "--snl-filters", *args.snl_filters]
        if args.inter_channels:
            cmd += ["--inter-channels", str(args.inter_channels)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print(f"large run: {label} ...", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"kind": label, "skipped": (done.stderr.strip().splitlines() or ["failed"])[-1][:80]})
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["kind"] = label
        row["peak_gib"] = row["peak_bytes"] / 2**30
        row["within_4_gib"] = "yes" if row["peak_bytes"] < 4 * 2**30 else "NO"
        if "saved_bytes" in row:
            row["saved_gib"] = row["saved_bytes"] / 2**30
        rows.append(row)
    base = next((r for r in rows if r["kind"] == "snl_linear" and "time_s" in r), None)
    for r in rows:
        if base is not None and "time_s" in r:
            r["time_vs_snl_linear"] = r["time_s"] / base["time_s"]
    title = (f"Linear paths at N = {LARGE_SHAPE[0] * LARGE_SHAPE[1] * LARGE_SHAPE[2]:,} ({'x'.join(map(str, LARGE_SHAPE))}), "
             f"C={args.channels}, C_s={args.inter_channels or args.channels // 2}, one forward+backward each "
             f"(fresh process), memory = {rows[0].get('memory_kind', '?') if rows else '?'}")
    table = format_table(rows, [("kind", "kind", ""), ("time_s", "fwd+bwd s", ".1f"),
                                ("time_vs_snl_linear", "time / SNL linear", ".2f"), ("peak_gib", "peak GiB", ".2f"),
                                ("saved_gib", "saved for backward GiB", ".2f"), ("within_4_gib", "< 4 GiB", "")])
    text = f"{title}\n\n{table}"
    print(f"\n{text}")
    return text


def run_spectral(args: argparse.Namespace) -> int:
    maps = [m for m in SPECTRAL_MAPS if args.maps is None or m[0] in args.maps]
    rows = bench_spectral_family(
        maps=maps,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        repeats=args.repeats,
        max_dense_nodes=args.max_dense_nodes,
    )
    for r in rows:
        if "memory_bytes" in r:
            r["memory_mb"] = r["memory_bytes"] / 2**20
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()} threads"
    title = (
        f"Spectral family vs NL and linear SNL, forward+backward, batch 1, {args.dtype}, {device_name}; "
        f"memory = {rows[0].get('memory_kind', '?')}; BAT ts = largest of 4, 2, 1 dividing T"
    )
    table = format_table(rows, SPECTRAL_COLUMNS)
    print(f"\n{title}\n\n{table}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("bench_spectral.json", json.dumps({"title": title, "rows": rows}, indent=1)),
                       ("bench_spectral.md", f"{title}\n\n{table}\n")):
        tmp = args.output_dir / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.output_dir / name)
    print(f"\nwritten: {args.output_dir}/bench_spectral.md, bench_spectral.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.large_one:
        options = large_variants(args.snl_filters)[args.large_one]
        row = bench_one_large("snl", options, shape=LARGE_SHAPE, channels=args.channels,
                              inter_channels=args.inter_channels or args.channels // 2, device=args.device)
        print(json.dumps(row))
        return 0
    if args.spectral:
        return run_spectral(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if args.large_only:
        text = run_large(args)
        tmp = args.output_dir / "bench_nonlocal_large.md.tmp"
        tmp.write_text(text + "\n")
        os.replace(tmp, args.output_dir / "bench_nonlocal_large.md")
        print(f"\nwritten: {args.output_dir}/bench_nonlocal_large.md")
        return 0
    partial = args.output_dir / "bench_nonlocal.partial.jsonl"
    partial.write_text("")

    def keep(row: dict) -> None:
        with partial.open("a") as f:
            f.write(json.dumps(row) + "\n")

    shapes = [s for s in (QUICK_SHAPES if args.quick else FULL_SHAPES)
              if args.max_nodes is None or s[0] * s[1] * s[2] <= args.max_nodes]
    rows = bench_nonlocal(
        kinds=args.kinds,
        shapes=shapes,
        channels=args.channels,
        inter_channels=args.inter_channels,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        repeats=args.repeats,
        max_dense_nodes=args.max_dense_nodes,
        on_row=keep,
        snl_filters=args.snl_filters,
    )
    for r in rows:
        if "memory_bytes" in r:
            r["memory_mb"] = r["memory_bytes"] / 2**20
    rows.sort(key=lambda r: (r["N"], r["kind"]))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()} threads"
    title = (
        f"Non-local blocks, forward+backward, batch 1, C={args.channels}, "
        f"C_s={args.inter_channels or args.channels // 2}, {args.dtype}, {device_name}; "
        f"memory = {rows[0].get('memory_kind', '?')}"
    )
    base_rows = [r for r in rows if not (r["kind"].startswith("snl_") and r["kind"] not in ("snl_dense", "snl_linear",
                                                                                            "snl_a1", "snl_a2"))]
    table = format_table(base_rows, COLUMNS)
    print(f"\n{title}\n\n{table}")
    if args.snl_filters:
        filter_rows = [r for r in rows if r["kind"] == "snl_linear" or r["kind"].startswith(
            tuple(f"snl_{n}_" for n in args.snl_filters))]
        filter_title = ("SNL filters (spectral family), dense and linear path, against the linear first-order SNL "
                        "of the same run")
        filter_table = format_table(filter_rows, [
            ("kind", "kind", ""), ("N", "N", ",d"), ("time_ms", "fwd+bwd ms", ".1f"), ("memory_mb", "memory MB", ".1f"),
            ("time_vs_snl_linear", "time / SNL linear", ".2f"), ("memory_vs_snl_linear", "memory / SNL linear", ".2f"),
        ])
        print(f"\n{filter_title}\n\n{filter_table}")
        table = f"{table}\n\n{filter_title}\n\n{filter_table}"
    cs = args.inter_channels or args.channels // 2
    op_rows = bench_snl_operator(
        shapes=shapes,
        inter_channels=cs,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        repeats=args.repeats,
    )
    for r in op_rows:
        for impl in ("dense", "linear"):
            if f"{impl}_memory_bytes" in r:
                r[f"{impl}_mb"] = r[f"{impl}_memory_bytes"] / 2**20
    op_title = (
        f"SNL graph part only (build A from θ, φ and apply A Z; forward+backward), C_s={cs}: "
        "what the factorisation changes, without the 1×1×1 projections both paths share"
    )
    op_table = format_table(
        op_rows,
        [
            ("N", "N", ",d"),
            ("dense_ms", "dense ms", ".1f"),
            ("linear_ms", "linear ms", ".1f"),
            ("dense_over_linear_time", "dense/linear time", ".1f"),
            ("dense_mb", "dense MB", ".1f"),
            ("linear_mb", "linear MB", ".1f"),
            ("dense_over_linear_memory", "dense/linear memory", ".1f"),
        ],
    )
    print(f"\n{op_title}\n\n{op_table}")
    table = f"{table}\n\n{op_title}\n\n{op_table}"
    for name, text in (("bench_nonlocal.json", json.dumps({"title": title, "rows": rows, "snl_operator": op_rows}, indent=1)),
                       ("bench_nonlocal.md", f"{title}\n\n{table}\n")):
        tmp = args.output_dir / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.output_dir / name)
    partial.unlink()
    print(f"\nwritten: {args.output_dir}/bench_nonlocal.md, bench_nonlocal.json")
    if args.large:
        text = run_large(args)
        tmp = args.output_dir / "bench_nonlocal_large.md.tmp"
        tmp.write_text(text + "\n")
        os.replace(tmp, args.output_dir / "bench_nonlocal_large.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
