#!/usr/bin/env python
"""Training throughput (clips/s), step-time percentiles, utilisation and peak memory of a backbone ± non-local blocks.

Two measurements per configuration, each kind in its own subprocess (so each peak memory is
its own), ratios against the first kind (``none`` = the backbone) measured in the same run:

1. **model**: forward + backward + SGD step (momentum 0.9) on one random batch already on
   the device, repeated (no data pipeline): what the model alone can do. Every step is
   timed: **p50 / p95 / max** step seconds over ``--steps`` (≥ 20) steps, since a mean hides
   the rare slow step. ``--flush both`` (the default) runs every kind twice, with
   flush-to-zero on (what the engine does, :mod:`snl_video.engine.runtime`) and off, each
   from the same seed in its own process, and prints the off/on ratios: a repeated batch
   is fitted within a few steps, its gradients shrink into denormal floats, and without
   flush-to-zero those steps run many times slower on x86 CPUs. **Utilisation**: achieved
   FLOP/s = 3 × forward FLOPs (``2 × MACs`` of the project's counter; backward ≈ 2
   forwards) × batch ÷ p50 step time, and its fraction of the peak of a large matrix product
   in the step's precision (fp32, or bf16/fp16 with ``--amp``) measured in the same process
   (:mod:`snl_video.utilisation`); on a GPU that fraction is the MFU. Peak memory:
   ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS on the CPU.
2. **loop** (``--data``): the real ``snl-video train`` engine for two short epochs on a
   prepared dataset (``--data DIR``, or ``--data synthetic``: a small synthetic UCF-101-format
   set prepared at the standard 128-pixel short side), with ``--workers`` loader processes;
   reported from the second epoch: clips/s and ``data_fraction``, the share of the epoch
   spent waiting for the loader. Near 0: the model is the bottleneck. Large, or loop clips/s
   well below model clips/s: input-bound.

    OMP_NUM_THREADS=1 python scripts/bench_train.py --model r3d50 --nonlocal none snl --batch 2 --steps 20 --threads 1
    python scripts/bench_train.py --model r3d50 --nonlocal none snl --batch 2 --data synthetic --workers 1
    python scripts/bench_train.py --device cuda --amp bf16 --channels-last --batch 32 --steps 20 \\
        --data /data/ucf101_prepared --workers 12
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snl_video.commands.renamed import add_renamed_option  # noqa: E402


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model_only(args: argparse.Namespace, kind: str, num_classes: int) -> dict:
    import torch

    from snl_video.models import build_model
    from snl_video.utilisation import (TRAIN_STEP_FORWARDS, forward_flops, measure_matmul_peak, step_time_stats,
                                       time_calls)

    device = torch.device(args.device)
    torch.manual_seed(args.seed)  # the same model and batch for every kind's flush on / off pair
    model = build_model(args.model, num_classes=num_classes, nonlocal_blocks=None if kind == "none" else kind).to(device)
    x = torch.randn(args.batch, 3, args.num_frames, args.size, args.size, device=device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    y = torch.randint(0, num_classes, (args.batch,), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    flops = TRAIN_STEP_FORWARDS * forward_flops(model, x)
    if device.type == "cuda":
        for _ in range(args.warmup):  # the peak memory of the timed steps, not of the warm-up's allocations
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = time_calls(step, device=device, steps=args.steps, warmup=0 if device.type == "cuda" else args.warmup)
    stats = step_time_stats(times)
    peak_dtype = dtype or torch.float32
    peak = measure_matmul_peak(device, peak_dtype)
    achieved = flops / stats["p50_s"]
    return {"model_clips_per_s": args.batch * len(times) / sum(times), "s_per_step": stats["mean_s"], **stats,
            "step_gflop": flops / 1e9, "achieved_tflops": achieved / 1e12, "peak_tflops": peak / 1e12,
            "peak_dtype": str(peak_dtype).removeprefix("torch."), "utilisation": achieved / peak,
            "step_seconds": times, "peak_mb": _peak_mb(device), "threads": torch.get_num_threads()}


def _training_loop(args: argparse.Namespace, kind: str, data_root: Path, num_classes: int) -> dict:
    from snl_video.config import config_from_dict
    from snl_video.engine.train import train

    with tempfile.TemporaryDirectory(prefix="bench_train_") as out:
        cfg = config_from_dict({
            "name": f"bench_{args.model}_{kind}",
            "model": {"name": args.model, "num_classes": num_classes},
            "nonlocal_blocks": None if kind == "none" else {"kind": kind},
            "data": {"root": str(data_root), "num_frames": args.num_frames, "crop_size": args.size,
                     "batch_size": args.batch, "num_workers": args.workers},
            "schedule": {"epochs": 2},
            "eval": {"every_epochs": 0},
            "runtime": {"device": args.device, "amp": args.amp, "channels_last": args.channels_last,
                        "flush_denormal": args.child_flush == "on",
                        "output_dir": out, "progress": False, "tensorboard": False, "log_every": 10**9,
                        "checkpoint_every": 10**6},
        })
        result = train(cfg, stop_after_epochs=2)
    second = result.history[-1]
    return {"loop_clips_per_s": second["clips_per_s"], "data_fraction": second["data_fraction"]}


def _child(args: argparse.Namespace, kind: str) -> dict:
    import torch

    from snl_video.engine.runtime import set_flush_denormal_all_threads

    if args.threads:
        torch.set_num_threads(args.threads)
    set_flush_denormal_all_threads(args.child_flush == "on")  # after the thread count: every thread
    num_classes = 101
    data_root = Path(args.data_root) if args.data_root else None
    if data_root is not None:
        import pandas as pd

        num_classes = int(pd.read_csv(data_root / "index.csv", usecols=["label"])["label"].max()) + 1
    row = {"model": args.model, "nonlocal": kind, "clip": f"{args.num_frames}x{args.size}x{args.size}",
           "batch": args.batch, "device": args.device, "amp": args.amp, "channels_last": args.channels_last,
           "flush": args.child_flush, **_model_only(args, kind, num_classes)}
    if data_root is not None and args.loop:
        row.update(_training_loop(args, kind, data_root, num_classes), workers=args.workers)
    return row


def _synthetic_prepared(work: Path, videos_per_class: int) -> Path:
    """A 10-class synthetic set (~UCF-101 frame size and length) prepared at short side 128; reused when present."""
    from snl_video.data.prepare import PrepareSettings, prepare_ucf101
    from snl_video.data.synthetic import make_synthetic_ucf101

    prepared = work / f"prepared_{videos_per_class}"
    if (prepared / "index.csv").is_file():
        return prepared
    raw = work / f"raw_{videos_per_class}"
    if not (raw / "ucfTrainTestlist").is_dir():
        make_synthetic_ucf101(raw, num_classes=10, videos_per_class=videos_per_class, video_frames=120, frame_jitter=60)
    prepare_ucf101(raw / "UCF-101", raw / "ucfTrainTestlist", prepared, splits=[1], workers=2,
                   settings=PrepareSettings(storage="npy"))  # the fastest input: the step, not the JPEG decode
    return prepared


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="r3d50")
    p.add_argument("--nonlocal", dest="kinds", nargs="+", default=["none", "snl"],
                   help="kinds to compare; the first is the baseline of the ratios ('none': no block)")
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="timed model-only steps (>= 20 for a meaningful p95)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--flush", choices=["both", "on", "off"], default="both",
                   help="flush-to-zero for denormals: 'both' measures each kind with it on and off (default)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate of the model-only steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the model and the batch (same for every row)")
    p.add_argument("--data", default=None, help="prepared dataset directory, or 'synthetic', for the training-loop row")
    p.add_argument("--workers", type=int, default=2, help="loader workers of the training-loop row")
    p.add_argument("--videos-per-class", type=int, default=4, help="size of the synthetic set (10 classes)")
    p.add_argument("--work", type=Path, default=Path("runs/bench_train"), help="where the synthetic set and results go")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data-root", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-flush", default="on", help=argparse.SUPPRESS)
    p.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.steps < 2:
        p.error(f"--steps {args.steps}: time at least 2 steps (20 or more for a meaningful p95)")
    if args.child is not None:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(_child(args, args.child)))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    data_root = None
    if args.data == "synthetic":
        data_root = _synthetic_prepared(args.work, args.videos_per_class)
    elif args.data:
        data_root = Path(args.data)
        if not (data_root / "index.csv").is_file():
            p.error(f"--data {data_root}: no index.csv (run `snl-video prepare ucf101` first, or use --data synthetic)")

    if args.steps < 20:
        logging.warning("--steps %d: fewer than 20 timed steps; p95 is then close to the max", args.steps)
    flushes = ["on", "off"] if args.flush == "both" else [args.flush]
    rows = []
    for kind in args.kinds:
        for flush in flushes:
            # the training-loop row once per kind, with the engine's setting (flush on unless only 'off')
            loop = data_root is not None and flush == flushes[0]
            argv = [*sys.argv[1:], "--child", kind, "--child-flush", flush] + (
                ["--data-root", str(data_root), "--loop"] if loop else [])
            out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{kind} (flush {flush}): the measurement failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    on_rows = {r["nonlocal"]: r for r in rows if r["flush"] == flushes[0]}
    for r in rows:
        r["model_speed_vs_base"] = r["model_clips_per_s"] / base["model_clips_per_s"]
        r["extra_peak_mb"] = r["peak_mb"] - base["peak_mb"]
        if "loop_clips_per_s" in r:
            r["loop_vs_model"] = r["loop_clips_per_s"] / r["model_clips_per_s"]
        ref = on_rows[r["nonlocal"]]
        for key in ("p50_s", "p95_s", "max_s"):
            r[f"{key}_vs_flush_on"] = r[key] / ref[key]

    from snl_video.benchmarking import format_table

    columns = [("nonlocal", "non-local", "s"), ("flush", "FTZ", "s"), ("p50_s", "p50 s", ".3f"),
               ("p95_s", "p95 s", ".3f"), ("max_s", "max s", ".3f"), ("p95_over_p50", "p95/p50", ".2f"),
               ("model_clips_per_s", "model clips/s", ".2f"),
               ("model_speed_vs_base", f"× {base['nonlocal']}", ".3f"),
               ("achieved_tflops", "TFLOP/s", ".3f"), ("utilisation", f"of {base['peak_dtype']} peak", ".1%"),
               ("peak_mb", "peak MB", ".0f"), ("extra_peak_mb", f"MB vs {base['nonlocal']}", "+.0f")]
    if data_root is not None:
        columns += [("loop_clips_per_s", f"loop clips/s ({args.workers} workers)", ".2f"),
                    ("loop_vs_model", "loop / model", ".2f"), ("data_fraction", "data wait", ".1%")]
    title = (f"{args.model}, {rows[0]['clip']} clips, batch {args.batch}, {args.device}"
             f"{'' if args.amp == 'none' else ' ' + args.amp}{' channels_last' if args.channels_last else ''}, "
             f"{rows[0]['threads']} threads, {args.steps} timed steps after {args.warmup} warm-up, lr {args.lr}"
             + (f", data {data_root}" if data_root else ""))
    notes = (f"\nUtilisation: 3 x forward FLOPs (2 x MACs of snl_video.models.profiling) per step / p50 step time, "
             f"against a {base['peak_dtype']} matrix product measured in the same process "
             + ", ".join(f"({r['nonlocal']}, FTZ {r['flush']}: {r['peak_tflops']:.3f} TFLOP/s)" for r in rows) + ".\n")
    if len(flushes) == 2:
        notes += "".join(
            f"flush-to-zero off / on, {r['nonlocal']}: p50 x{r['p50_s_vs_flush_on']:.2f}, p95 x{r['p95_s_vs_flush_on']:.2f},"
            f" max x{r['max_s_vs_flush_on']:.2f}\n" for r in rows if r["flush"] == "off")
    table = f"{title}\n\n{format_table(rows, columns)}\n{notes}"
    if data_root is not None:
        bound = [r["nonlocal"] for r in rows if r.get("data_fraction", 0.0) > 0.1]
        table += ("\ninput-bound (data wait > 10%): " + ", ".join(bound) if bound else
                  "\nnot input-bound: the loader kept up (data wait <= 10% of each epoch)") + "\n"
    print(table)
    (args.work / "bench_train.md").write_text(table)
    (args.work / "bench_train.json").write_text(json.dumps(rows, indent=1))
    print(f"written: {args.work / 'bench_train.md'}, {args.work / 'bench_train.json'}")


if __name__ == "__main__":
    main()
