#!/usr/bin/env python
"""Forward+backward time of r3d50 with and without each non-local block.

Settings (``--settings``; the block sits where the paper's default puts it in that stage,
right before the stage's last residual block):

* ``paper``      16x112x112 clip, block in res4 (layer3, C=1024), N = 2x7x7 = 98
* ``res3_112``   32x112x112 clip, block in res3 (layer2, C=512),  N = 8x14x14 = 1,568
* ``res3_224``   64x224x224 clip, block in res3 (layer2, C=512),  N = 16x28x28 = 12,544

Each setting times the plain backbone and the backbone with each block in the same run
(interleaved rounds, minimum over rounds), and the ratio to that baseline. It then times
each block alone, forward+backward on the very feature map it sees in the network: on a
shared or noisy machine, where a block worth a few percent of the network drowns in the
run-to-run spread of whole-network timings, ``1 + block / no-block`` is the reliable
estimate of the overhead. ``snl`` is measured with the dense (N x N) and the exact linear-time
(``impl="linear"``) affinity. Batch 1, C_s = C/2, train mode (BN on batch statistics).

Usage:
    python scripts/bench_models.py                                  # CPU, paper setting, all kinds
    python scripts/bench_models.py --settings paper res3_112 --kinds nl snl
    python scripts/bench_models.py --device cuda --settings paper res3_112 res3_224 --repeats 10

Whole backbones against each other (no blocks; the first one is the baseline), e.g. FFC-C2D
against C2D at the paper's Kinetics clip or the UCF-101 one:

    python scripts/bench_models.py --backbones c2d_r50 ffc_c2d_r50 --num-frames 8 --size 224
    python scripts/bench_models.py --backbones c2d_r50 ffc_c2d_r50 ffc_c2d_r50:fft=3d --num-frames 16 --size 112

(``name:key=value,...`` passes model options.)

Writes the table and raw rows to --output-dir (Markdown + JSON). On CPU "memory" is the bytes
autograd saves for backward; on CUDA the peak allocation (see snl_video.benchmarking).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from snl_video.benchmarking import format_table, saved_tensor_bytes
from snl_video.commands.renamed import add_renamed_option
from snl_video.models import build_model
from snl_video.nonlocal_blocks import list_nonlocal_kinds

logger = logging.getLogger("bench_models")

# name -> (frames, size, stage, position of the block in that stage)
SETTINGS: dict[str, tuple[int, int, str, int]] = {
    "paper": (16, 112, "layer3", 4),
    "res3_112": (32, 112, "layer2", 2),
    "res3_224": (64, 224, "layer2", 2),
}
COLUMNS = [
    ("setting", "setting", ""),
    ("variant", "block", ""),
    ("N", "N", ",d"),
    ("time_ms", "network ms (min)", ".0f"),
    ("median_ms", "network ms (median)", ".0f"),
    ("ratio", "network / no-block", ".3f"),
    ("block_alone_ms", "block alone ms", ".1f"),
    ("overhead_from_block", "1 + block / no-block", ".3f"),
    ("block_vs_nl", "block / NL block", ".2f"),
    ("memory_mb", "memory MB", ".0f"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--model", default="r3d50")
    p.add_argument("--settings", nargs="+", default=["paper"], choices=list(SETTINGS))
    p.add_argument("--kinds", nargs="+", default=list_nonlocal_kinds("graph"), choices=list_nonlocal_kinds("graph"))
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (one step of every variant each)")
    p.add_argument("--block-repeats", type=int, default=10, help="timed rounds of the isolated blocks")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_renamed_option(p, "--output-dir", "--out", type=Path, default=Path("runs/bench_models"))
    p.add_argument(
        "--backbones",
        nargs="+",
        default=None,
        help="time these whole backbones against the first (no blocks; name or name:key=value,...) instead of --settings",
    )
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=16, help="clip length for --backbones")
    p.add_argument("--size", type=int, default=112, help="crop size for --backbones")
    return p.parse_args(argv)


BACKBONE_COLUMNS = [
    ("variant", "backbone", ""),
    ("params_m", "params M", ".2f"),
    ("time_ms", "fwd+bwd ms (min)", ".0f"),
    ("median_ms", "fwd+bwd ms (median)", ".0f"),
    ("ratio", "/ baseline (min)", ".3f"),
    ("ratio_median", "/ baseline (median)", ".3f"),
    ("memory_mb", "memory MB", ".0f"),
]


def _backbone(text: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:key=value,key=value`` (values read as YAML)."""
    import yaml

    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"backbone option {item!r} of {text!r} is not key=value")
        options[key] = yaml.safe_load(value)
    return name, options


def bench_backbones(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Forward+backward of whole backbones on one clip, interleaved rounds; ratios to the first."""
    device = torch.device(args.device)
    clip = torch.randn(1, 3, args.num_frames, args.size, args.size, device=device)
    models: dict[str, torch.nn.Module] = {}
    rows: dict[str, dict[str, Any]] = {}
    for text in args.backbones:
        name, options = _backbone(text)
        torch.manual_seed(0)
        model = build_model(name, num_classes=400, **options).to(device).train()
        models[text] = model
        rows[text] = {"variant": text, "frames": args.num_frames, "size": args.size, "times": [],
                      "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    skipped: set[str] = set()
    _interleaved_rounds(models, clip, device, rows, "times", skipped, warmup=args.warmup, repeats=args.repeats,
                        name="backbones")
    for label, model in models.items():
        row = rows[label]
        if row["times"]:
            row["time_ms"] = min(row["times"])
            row["median_ms"] = statistics.median(row["times"])
            if device.type == "cpu":
                row["memory_mb"] = saved_tensor_bytes(lambda: model(clip)) / 2**20
        model.zero_grad(set_to_none=True)
    base = rows[args.backbones[0]]
    for r in rows.values():
        if "time_ms" in r and "time_ms" in base:
            r["ratio"] = r["time_ms"] / base["time_ms"]
            r["ratio_median"] = r["median_ms"] / base["median_ms"]
    return list(rows.values())


def variants(kinds: list[str]) -> list[tuple[str, str | None, dict[str, Any]]]:
    out: list[tuple[str, str | None, dict[str, Any]]] = [("none", None, {})]
    for kind in kinds:
        if kind == "snl":
            out += [("snl_dense", "snl", {"impl": "dense"}), ("snl_linear", "snl", {"impl": "linear"})]
        else:
            out.append((kind, kind, {}))
    return out


def _step(model: torch.nn.Module, clip: torch.Tensor, device: torch.device) -> float:
    """Seconds of one forward+backward (gradients cleared first)."""
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    model(clip).float().sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def _interleaved_rounds(
    modules: dict[str, torch.nn.Module],
    x: torch.Tensor,
    device: torch.device,
    rows: dict[str, dict[str, Any]],
    key: str,
    skipped: set[str],
    *,
    warmup: int,
    repeats: int,
    name: str,
) -> None:
    """``warmup + repeats`` rounds of one timed step per module; the milliseconds of the
    repeats go to ``rows[label][key]``. A module that runs out of memory is marked
    skipped and left out of the later rounds (and of later calls sharing ``skipped``)."""
    for round_index in range(warmup + repeats):
        for label, module in modules.items():
            if label in skipped:
                continue
            try:
                seconds = _step(module, x, device)
            except torch.OutOfMemoryError:
                skipped.add(label)
                rows[label]["skipped"] = "out of memory"
                continue
            if round_index >= warmup:
                rows[label][key].append(seconds * 1e3)
        logger.info("%s: round %d/%d done", name, round_index + 1, warmup + repeats)


def bench_setting(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every variant of one setting, interleaved: each round runs one step of every
    variant in turn, so a slow spell of a shared machine hits all variants alike. The
    estimate is the minimum over rounds (the least-disturbed step); the median is kept too."""
    frames, size, stage, position = SETTINGS[name]
    device = torch.device(args.device)
    clip = torch.randn(1, 3, frames, size, size, device=device)
    models: dict[str, torch.nn.Module] = {}
    rows: dict[str, dict[str, Any]] = {}
    for label, kind, options in variants(args.kinds):
        torch.manual_seed(0)
        spec = None if kind is None else {"kind": kind, "options": options, "positions": {stage: [position]}}
        model = build_model(args.model, num_classes=400, nonlocal_blocks=spec).to(device).train()
        for block in model.nonlocal_blocks.values():
            with torch.no_grad():  # time a trained-looking block (gradients reach all of it)
                block.out_norm.weight.fill_(1.0)
        models[label] = model
        rows[label] = {"setting": name, "variant": label, "frames": frames, "size": size, "stage": stage, "times": []}
    # The placed block's input (the output of residual block `position` of `stage`): its
    # node count N, and the feature map the isolated-block timing runs on.
    probe = build_model(args.model, num_classes=400).to(device).eval()
    captured: dict[str, Any] = {}
    getattr(probe, stage)[position].register_forward_hook(
        lambda m, i, o: captured.update(N=o[0, 0].numel(), feature=o.detach().clone())
    )
    with torch.no_grad():
        probe(clip)
    del probe
    skipped: set[str] = set()
    _interleaved_rounds(models, clip, device, rows, "times", skipped, warmup=args.warmup, repeats=args.repeats,
                        name=name)
    # The block alone, forward+backward on the captured map (gradient to its input too):
    # a direct measure of the block's cost, far less noisy than a difference of two
    # whole-network timings when the block is a few percent of the network.
    feature = captured["feature"].requires_grad_(True)
    blocks = {
        label: model.nonlocal_blocks[model.nonlocal_key(stage, position)]
        for label, model in models.items()
        if label != "none"
    }
    for label in blocks:
        rows[label]["block_times"] = []
    _interleaved_rounds(blocks, feature, device, rows, "block_times", skipped, warmup=args.warmup,
                        repeats=args.block_repeats, name=f"{name} (blocks alone)")
    for label, model in models.items():
        row = rows[label]
        row["N"] = captured["N"]
        if row.get("block_times"):
            row["block_alone_ms"] = min(row["block_times"])
        if row["times"]:
            row["time_ms"] = min(row["times"])
            row["median_ms"] = statistics.median(row["times"])
            if device.type == "cpu":
                row["memory_mb"] = saved_tensor_bytes(lambda: model(clip)) / 2**20
                row["memory_kind"] = "saved_for_backward"
        model.zero_grad(set_to_none=True)
    del models
    base = rows["none"].get("time_ms")
    nl_alone = rows.get("nl", {}).get("block_alone_ms")
    for r in rows.values():
        if base and "time_ms" in r:
            r["ratio"] = r["time_ms"] / base
        if "block_alone_ms" in r:
            if base:
                r["overhead_from_block"] = 1 + r["block_alone_ms"] / base
            if nl_alone:
                r["block_vs_nl"] = r["block_alone_ms"] / nl_alone
    return list(rows.values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    columns = COLUMNS
    if args.backbones:
        rows = bench_backbones(args)
        columns = BACKBONE_COLUMNS
    else:
        for name in args.settings:
            rows += bench_setting(name, args)
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    )
    what = f"{' vs '.join(args.backbones)} at {args.num_frames}x{args.size}x{args.size}" if args.backbones else args.model
    title = (
        f"{what}, forward+backward, batch 1, float32, {device_name}; {args.repeats} interleaved rounds "
        f"after {args.warmup} warm-up; memory = " + ("bytes saved for backward" if args.device == "cpu" else "not measured")
    )
    table = format_table(rows, columns)
    print(f"\n{title}\n\n{table}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in (
        ("bench_models.json", json.dumps({"title": title, "rows": rows}, indent=1)),
        ("bench_models.md", f"{title}\n\n{table}\n"),
    ):
        tmp = args.output_dir / (fname + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.output_dir / fname)
    print(f"\nwritten: {args.output_dir}/bench_models.md, bench_models.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
