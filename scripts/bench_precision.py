#!/usr/bin/env python
"""CPU inference precision: the speed of fp32 / bf16 with and without channels-last 3D per
model family, and the accuracy cost of bf16 on a prepared test set.

Usage:
    python scripts/bench_precision.py speed [--models r3d18 r3d50 i3d_r50] [--threads 2]
    python scripts/bench_precision.py accuracy --checkpoint runs/demo/train/checkpoints/last.pt

``speed``: forward of a batch of ``--batch`` 16x112^2 clips, each model with and without one
SNL block (``layer3: [0]``... the registry's default placement), in fp32 and under bf16
autocast, contiguous and channels-last 3D; best of ``--rounds`` interleaved rounds (the
machine may be shared: interleaving spreads its load over every variant). Ratios are
against fp32 contiguous of the same model, measured in the same run.

``accuracy``: the checkpoint's video-level evaluation (its recipe's test split and
protocol) in fp32 and in bf16 (``runtime.amp=bf16``): top-1 agreement of the per-video
predictions, the largest difference of any class probability, and both top-1 accuracies.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snl_video.benchmarking import format_table  # noqa: E402

logger = logging.getLogger("bench_precision")


def speed(args: argparse.Namespace) -> list[dict]:
    from snl_video.models import build_model

    rows = []
    variants = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]
    for name in args.models:
        for kind in (None, "snl"):
            torch.manual_seed(0)
            model = build_model(name, num_classes=101, nonlocal_blocks=kind).eval()
            x = torch.randn(args.batch, 3, 16, 112, 112)
            best = {v: float("inf") for v in variants}
            for _ in range(args.rounds):
                for precision, channels_last in variants:
                    model.to(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)
                    inp = x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x
                    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                        model(inp)  # warm-up of this layout (oneDNN primitives)
                        start = time.perf_counter()
                        model(inp)
                        best[(precision, channels_last)] = min(best[(precision, channels_last)],
                                                               time.perf_counter() - start)
            base = best[("fp32", False)]
            row = {"model": name + (" + snl" if kind else "")}
            for (precision, channels_last), t in best.items():
                key = precision + ("_cl" if channels_last else "")
                row[key] = t
                row[key + "_x"] = base / t
            rows.append(row)
            logger.info("%s", row)
    cols = [("model", "model", "")]
    for key, label in (("fp32", "fp32 s"), ("fp32_cl", "fp32+CL s"), ("bf16", "bf16 s"), ("bf16_cl", "bf16+CL s")):
        cols.append((key, label, ".3f"))
    for key, label in (("fp32_cl_x", "fp32+CL x"), ("bf16_x", "bf16 x"), ("bf16_cl_x", "bf16+CL x")):
        cols.append((key, label, ".2f"))
    print(format_table(rows, cols))
    return rows


def accuracy(args: argparse.Namespace) -> list[dict]:
    import dataclasses

    from snl_video.engine.builders import resolve_device
    from snl_video.engine.checkpoint import checkpoint_recipe, load_training_checkpoint
    from snl_video.engine.evaluate import evaluate_model
    from snl_video.engine.loading import model_from_training_state

    state = load_training_checkpoint(args.checkpoint)
    cfg = checkpoint_recipe(state, path=args.checkpoint, overrides=[])
    device = resolve_device("cpu")
    model = model_from_training_state(state, cfg, path=args.checkpoint).eval()
    reports = {}
    for amp in ("none", "bf16"):
        run = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, amp=amp, channels_last=amp == "bf16"))
        model.to(memory_format=torch.channels_last_3d if amp == "bf16" else torch.contiguous_format)
        reports[amp] = evaluate_model(model, run, device=device)
    a, b = reports["none"].videos, reports["bf16"].videos
    assert list(a.video_ids) == list(b.video_ids)
    fp32, bf16 = np.asarray(a.scores), np.asarray(b.scores)
    row = {"videos": len(fp32), "top1_agreement": float((fp32.argmax(1) == bf16.argmax(1)).mean()),
           "max_prob_diff": float(np.abs(fp32 - bf16).max()),
           "mean_prob_diff": float(np.abs(fp32 - bf16).mean()),
           "fp32_video_top1": reports["none"].to_json_dict()["video_top1"],
           "bf16_video_top1": reports["bf16"].to_json_dict()["video_top1"]}
    print(format_table([row], [("videos", "test videos", "d"), ("top1_agreement", "top-1 agreement", ".1%"),
                               ("max_prob_diff", "max prob. diff", ".4f"),
                               ("mean_prob_diff", "mean prob. diff", ".5f"),
                               ("fp32_video_top1", "fp32 video top-1 %", ".1f"),
                               ("bf16_video_top1", "bf16 video top-1 %", ".1f")]))
    return [row]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--models", nargs="+", default=["r3d18", "r3d50", "i3d_r50"])
    s.add_argument("--batch", type=int, default=2)
    s.add_argument("--rounds", type=int, default=3)
    a = sub.add_parser("accuracy")
    a.add_argument("--checkpoint", type=Path, required=True)
    for q in (s, a):
        q.add_argument("--threads", type=int, default=None)
        q.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = speed(args) if args.what == "speed" else accuracy(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
