#!/usr/bin/env python
"""Memory and speed of the training step with ``runtime.activation_checkpointing`` and ``runtime.compile``.

Each variant runs in its own subprocess (so each peak RSS is its own) on random clips:
forward + backward + SGD step of ``--model`` (default r3d50) at ``--num-frames`` × ``--size``²,
ratios against ``plain`` measured in the same run.

* ``plain``: the eager model;
* ``ckpt``: residual blocks of ``--stages`` (default layer2 layer3) recompute their activations
  in backward (:func:`snl_video.engine.memory.apply_activation_checkpointing`);
* ``compile``: ``torch.compile`` of the model (inductor); its first step (compilation) is
  reported apart from the steady-state step time.

Memory: the bytes autograd saves for backward during the forward (exact, repeatable;
:func:`snl_video.benchmarking.saved_tensor_bytes`) and the process's peak RSS, also minus
the RSS before the first step (the activations' share). On a GPU, ``--device cuda`` reports
``torch.cuda.max_memory_allocated`` instead.

    python scripts/bench_memory.py --variants plain ckpt --batch 2 --steps 3
    python scripts/bench_memory.py --variants plain compile --batch 2 --steps 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snl_video.commands.renamed import add_renamed_option  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(args: argparse.Namespace, variant: str) -> dict:
    import torch

    from snl_video.benchmarking import saved_tensor_bytes
    from snl_video.engine.memory import apply_activation_checkpointing
    from snl_video.models import build_model

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build_model(args.model, num_classes=101, nonlocal_blocks=None if args.nonlocal_kind == "none" else args.nonlocal_kind)
    model.to(device).train()
    if variant == "ckpt":
        apply_activation_checkpointing(model, args.stages)
    x = torch.randn(args.batch, 3, args.num_frames, args.size, args.size, device=device)
    y = torch.randint(0, 101, (args.batch,), device=device)
    net = torch.compile(model) if variant == "compile" else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    result: dict = {"variant": variant}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    rss_before = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()
    result["first_step_s"] = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    result["step_s"] = statistics.median(times)
    if device.type == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_rss_mb"] = _rss_mb()
        result["peak_rss_over_start_mb"] = result["peak_rss_mb"] - rss_before
        if variant != "compile":  # after the RSS figures: this forward holds its saved tensors too
            result["saved_mb"] = saved_tensor_bytes(lambda: net(x).sum()) / 2**20
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="r3d50")
    p.add_argument("--nonlocal", dest="nonlocal_kind", default="none", help="a non-local kind placed by default, or none")
    p.add_argument("--variants", nargs="+", default=["plain", "ckpt"], choices=["plain", "ckpt", "compile"])
    p.add_argument("--stages", nargs="+", default=["layer2", "layer3"])
    p.add_argument("--batch", type=int, default=2)
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(args, args.child)))
        return
    rows = []
    for variant in args.variants:
        argv = [a for a in sys.argv[1:]] + ["--child", variant]
        out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{variant}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = next((r for r in rows if r["variant"] == "plain"), rows[0] if rows else None)
    print(f"{args.model} ({args.nonlocal_kind}), batch {args.batch}, {args.num_frames}x{args.size}x{args.size}, {args.device}; "
          f"ckpt stages: {' '.join(args.stages)}")
    print("| variant | step s | × plain speed | first step s | saved for backward MB | peak RSS MB | "
          "RSS over start MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        speed = base["step_s"] / r["step_s"] if base else float("nan")
        saved = f"{r['saved_mb']:.0f}" if "saved_mb" in r else "—"
        peak = r.get("peak_rss_mb", r.get("peak_mb", float("nan")))
        over = r.get("peak_rss_over_start_mb", float("nan"))
        print(f"| {r['variant']} | {r['step_s']:.2f} | {speed:.2f} | {r['first_step_s']:.1f} | {saved} | "
              f"{peak:.0f} | {over:.0f} |")


if __name__ == "__main__":
    main()
