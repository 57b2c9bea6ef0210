"""Training-step throughput (clips/s) and peak memory of a model ± a non-local block.

Times forward + backward + SGD step on random clips (no data pipeline: this measures the
model; the input side is measured by the prepare/decoding benchmarks), one configuration
per subprocess so each peak RSS is its own. On CUDA, peak memory is
``torch.cuda.max_memory_allocated``; ``--amp bf16`` autocasts.

    python scripts/bench_train.py --model r3d50 --nonlocal none snl --frames 16 --size 112 --batch 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _one(args: argparse.Namespace, kind: str) -> dict:
    import torch

    from snl_video.models import build_model

    device = torch.device(args.device)
    model = build_model(args.model, num_classes=101, nonlocal_blocks=None if kind == "none" else kind).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device)
    y = torch.randint(0, 101, (args.batch,), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

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
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"model": args.model, "nonlocal": kind, "clip": f"{args.frames}x{args.size}x{args.size}", "batch": args.batch,
            "device": args.device, "amp": args.amp, "threads": torch.get_num_threads(),
            "clips_per_s": args.batch * args.steps / seconds, "s_per_step": seconds / args.steps, "peak_mb": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="r3d50")
    p.add_argument("--nonlocal", dest="kinds", nargs="+", default=["none", "snl"], help="kinds to compare ('none': baseline)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(_one(args, args.child)))
        return
    for kind in args.kinds:
        argv = [a for a in sys.argv[1:]]
        out = subprocess.run([sys.executable, __file__, *argv, "--child", kind], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{row['model']:8s} {kind:5s} {row['clip']} b{row['batch']} {row['device']} {row['amp']}: "
              f"{row['clips_per_s']:.2f} clips/s ({row['s_per_step']:.2f} s/step), peak {row['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
