#!/usr/bin/env python
"""Training throughput (clips/s) and peak memory of a backbone ± non-local blocks, and whether training is input-bound.

Two measurements per configuration, each kind in its own subprocess (so each peak memory is
its own), ratios against the first kind (``none`` = the backbone) measured in the same run:

1. **model**: forward + backward + SGD step on random clips already on the device (no data
   pipeline): what the model alone can do. Peak memory: ``torch.cuda.max_memory_allocated``
   on CUDA, the process's peak RSS on the CPU.
2. **loop** (``--data``): the real ``snl-video train`` engine for two short epochs on a
   prepared dataset (``--data DIR``, or ``--data synthetic``: a small synthetic UCF-101-format
   set prepared at the standard 128-pixel short side), with ``--workers`` loader processes;
   reported from the second epoch: clips/s and ``data_fraction``, the share of the epoch
   spent waiting for the loader. Near 0: the model is the bottleneck. Large, or loop clips/s
   well below model clips/s: input-bound.

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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model_only(args: argparse.Namespace, kind: str, num_classes: int) -> dict:
    import torch

    from snl_video.models import build_model

    device = torch.device(args.device)
    model = build_model(args.model, num_classes=num_classes, nonlocal_blocks=None if kind == "none" else kind).to(device)
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
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

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"model_clips_per_s": args.batch * args.steps / seconds, "s_per_step": seconds / args.steps,
            "peak_mb": _peak_mb(device), "threads": torch.get_num_threads()}


def _training_loop(args: argparse.Namespace, kind: str, data_root: Path, num_classes: int) -> dict:
    from snl_video.config import config_from_dict
    from snl_video.engine.train import train

    with tempfile.TemporaryDirectory(prefix="bench_train_") as out:
        cfg = config_from_dict({
            "name": f"bench_{args.model}_{kind}",
            "model": {"name": args.model, "num_classes": num_classes},
            "nonlocal_blocks": None if kind == "none" else {"kind": kind},
            "data": {"root": str(data_root), "num_frames": args.frames, "crop_size": args.size,
                     "batch_size": args.batch, "num_workers": args.workers},
            "schedule": {"epochs": 2},
            "eval": {"every_epochs": 0},
            "runtime": {"device": args.device, "amp": args.amp, "channels_last": args.channels_last,
                        "output_dir": out, "progress": False, "tensorboard": False, "log_every": 10**9,
                        "checkpoint_every": 10**6},
        })
        result = train(cfg, stop_after_epochs=2)
    second = result.history[-1]
    return {"loop_clips_per_s": second["clips_per_s"], "data_fraction": second["data_fraction"]}


def _child(args: argparse.Namespace, kind: str) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    num_classes = 101
    data_root = Path(args.data_root) if args.data_root else None
    if data_root is not None:
        import pandas as pd

        num_classes = int(pd.read_csv(data_root / "index.csv", usecols=["label"])["label"].max()) + 1
    row = {"model": args.model, "nonlocal": kind, "clip": f"{args.frames}x{args.size}x{args.size}",
           "batch": args.batch, "device": args.device, "amp": args.amp, "channels_last": args.channels_last,
           **_model_only(args, kind, num_classes)}
    if data_root is not None:
        row.update(_training_loop(args, kind, data_root, num_classes), workers=args.workers)
    return row


def _synthetic_prepared(work: Path, videos_per_class: int) -> Path:
    """A 10-class synthetic set (~UCF-101 frame size and length) prepared at short side 128; reused when present."""
    from snl_video.data.prepare import prepare_ucf101
    from snl_video.data.synthetic import make_synthetic_ucf101

    prepared = work / f"prepared_{videos_per_class}"
    if (prepared / "index.csv").is_file():
        return prepared
    raw = work / f"raw_{videos_per_class}"
    if not (raw / "ucfTrainTestlist").is_dir():
        make_synthetic_ucf101(raw, num_classes=10, videos_per_class=videos_per_class, num_frames=120, frame_jitter=60)
    prepare_ucf101(raw / "UCF-101", raw / "ucfTrainTestlist", prepared, splits=[1], workers=2)
    return prepared


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="r3d50")
    p.add_argument("--nonlocal", dest="kinds", nargs="+", default=["none", "snl"],
                   help="kinds to compare; the first is the baseline of the ratios ('none': no block)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=5, help="timed model-only steps")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--data", default=None, help="prepared dataset directory, or 'synthetic', for the training-loop row")
    p.add_argument("--workers", type=int, default=2, help="loader workers of the training-loop row")
    p.add_argument("--videos-per-class", type=int, default=4, help="size of the synthetic set (10 classes)")
    p.add_argument("--work", type=Path, default=Path("runs/bench_train"), help="where the synthetic set and results go")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data-root", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
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

    rows = []
    for kind in args.kinds:
        argv = [*sys.argv[1:], "--child", kind] + (["--data-root", str(data_root)] if data_root else [])
        out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{kind}: the measurement failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    for r in rows:
        r["model_speed_vs_base"] = r["model_clips_per_s"] / base["model_clips_per_s"]
        r["extra_peak_mb"] = r["peak_mb"] - base["peak_mb"]
        if "loop_clips_per_s" in r:
            r["loop_vs_model"] = r["loop_clips_per_s"] / r["model_clips_per_s"]

    from snl_video.benchmarking import format_table

    columns = [("nonlocal", "non-local", "s"), ("model_clips_per_s", "model clips/s", ".2f"),
               ("model_speed_vs_base", f"× {base['nonlocal']}", ".3f"), ("peak_mb", "peak MB", ".0f"),
               ("extra_peak_mb", f"MB vs {base['nonlocal']}", "+.0f")]
    if data_root is not None:
        columns += [("loop_clips_per_s", f"loop clips/s ({args.workers} workers)", ".2f"),
                    ("loop_vs_model", "loop / model", ".2f"), ("data_fraction", "data wait", ".1%")]
    title = (f"{args.model}, {rows[0]['clip']} clips, batch {args.batch}, {args.device}"
             f"{'' if args.amp == 'none' else ' ' + args.amp}{' channels_last' if args.channels_last else ''}, "
             f"{rows[0]['threads']} threads" + (f", data {data_root}" if data_root else ""))
    table = f"{title}\n\n{format_table(rows, columns)}\n"
    if data_root is not None:
        bound = [r["nonlocal"] for r in rows if r["data_fraction"] > 0.1]
        table += ("\ninput-bound (data wait > 10%): " + ", ".join(bound) if bound else
                  "\nnot input-bound: the loader kept up (data wait <= 10% of each epoch)") + "\n"
    print(table)
    (args.work / "bench_train.md").write_text(table)
    (args.work / "bench_train.json").write_text(json.dumps(rows, indent=1))
    print(f"written: {args.work / 'bench_train.md'}, {args.work / 'bench_train.json'}")


if __name__ == "__main__":
    main()
