#!/usr/bin/env python
"""Where denormal (subnormal) floats arise in CPU training, and what they cost per step.

Repeats one random batch (the loop of issue 22: SGD with momentum, the model fits the batch
and its gradients shrink) and, every ``--census-every`` steps, counts the subnormal values
(``0 < |x| < torch.finfo(dtype).tiny``) held by:

* parameters, their gradients, the optimizer's momentum buffers, BatchNorm running statistics
  (``state``), grouped by top-level module (``stem``, ``layer1`` …, ``nonlocal_blocks``, ``fc``);
* every operator output of one forward + backward (``forward`` / ``backward``, by ATen op),
  counted by a dispatch mode on a separate, untimed pass over the same batch.

Each step's time is taken on the ordinary (uncounted) step. ``--flush on`` sets
``torch.set_flush_denormal(True)`` first (the counts are still taken with flushing off, so
they show what the arithmetic would produce). One JSON line per step is written to
``--output-file`` (and the census rows in full); a short summary is printed.

    OMP_NUM_THREADS=1 python scripts/bench_denormals.py --nonlocal snl --steps 40 --flush off
    OMP_NUM_THREADS=1 python scripts/bench_denormals.py --nonlocal snl --steps 40 --flush on

``--config RECIPE [key=value ...]`` instead watches ordinary training: the engine's ``train``
runs the recipe (many batches, augmentation, the schedule) while a global optimizer hook
counts, before every step, the subnormal gradients, momentum buffers and parameters, and
the seconds since the previous step; it prints the steps where gradients hold subnormals.

    OMP_NUM_THREADS=1 python scripts/bench_denormals.py --config configs/demo/synthetic_r3d10_snl.yaml \
        data.root=runs/demo/data/prepared runtime.output_dir=/tmp/census runtime.flush_denormal=false
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from snl_video.commands.renamed import add_renamed_option  # noqa: E402

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402


def count_subnormal(t: torch.Tensor) -> int:
    """How many entries of a floating tensor are subnormal (nonzero and below the dtype's ``tiny``)."""
    if not t.is_floating_point() or t.numel() == 0:
        return 0
    a = t.detach().abs()
    return int(((a > 0) & (a < torch.finfo(t.dtype).tiny)).sum())


class _OpCensus(TorchDispatchMode):
    """Counts subnormal entries in every operator's outputs, keyed by (phase, op)."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = "forward"
        self.counts: collections.Counter[str] = collections.Counter()
        self.elements: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__.startswith(("empty", "new_empty")):
            return out  # uninitialised memory, not arithmetic
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                key = f"{self.phase}:{func.overloadpacket.__name__}"
                n = count_subnormal(t)
                if n:
                    self.counts[key] += n
                self.elements[key] += t.numel()
        return out


def _group(name: str) -> str:
    return name.split(".")[0]


def _state_census(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, dict[str, int]]:
    rows: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, p in model.named_parameters():
        rows["param"][_group(name)] += count_subnormal(p)
        if p.grad is not None:
            rows["grad"][_group(name)] += count_subnormal(p.grad)
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            rows["momentum"][_group(name)] += count_subnormal(buf)
    for name, b in model.named_buffers():
        rows["bn_stats"][_group(name)] += count_subnormal(b)
    return {k: {g: n for g, n in v.items() if n} for k, v in rows.items()}


def _engine_census(config: Path, overrides: list[str], out: Path | None, *, evaluate: bool) -> None:
    """Run ``train`` on ``config`` with a global optimizer pre-step hook that counts subnormals."""
    from snl_video.config import load_config
    from snl_video.engine.train import train

    cfg = load_config(config, overrides)
    rows: list[dict[str, Any]] = []
    last = [time.perf_counter()]

    def before_step(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        now = time.perf_counter()
        params = [q for group in optimizer.param_groups for q in group["params"]]
        grads = [q.grad for q in params if q.grad is not None]
        bufs = [optimizer.state.get(q, {}).get("momentum_buffer") for q in params]
        row = {"step": len(rows), "seconds": now - last[0],
               "grad": sum(count_subnormal(g) for g in grads), "grad_elements": sum(g.numel() for g in grads),
               "momentum": sum(count_subnormal(b) for b in bufs if b is not None),
               "param": sum(count_subnormal(q) for q in params)}
        rows.append(row)
        last[0] = now

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(before_step)
    try:
        result = train(cfg)
    finally:
        handle.remove()
    if out:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    hit = [r for r in rows if r["grad"] or r["momentum"] or r["param"]]
    print(f"{cfg.name} ({cfg.nonlocal_blocks.kind if cfg.nonlocal_blocks else 'no block'}), flush_denormal="
          f"{cfg.runtime.flush_denormal}: {len(rows)} optimizer steps, {len(hit)} with subnormal values")
    for r in hit[:20]:
        print(f"  step {r['step']}: grad {r['grad']} of {r['grad_elements']}, momentum {r['momentum']}, "
              f"param {r['param']}, {r['seconds']:.2f} s since the previous step")
    if result.history:
        print("  last epoch:", {k: v for k, v in result.history[-1].items() if isinstance(v, (int, float))})
    if evaluate and result.last_checkpoint is not None:
        from snl_video.engine.evaluate import run_evaluation

        report = run_evaluation(cfg, result.last_checkpoint, out_dir=Path(cfg.runtime.output_dir) / "eval")
        print(f"  evaluation: clip top-1 {report.clip_top1:.2f}, video top-1 {report.video_top1:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="r3d50")
    p.add_argument("--nonlocal", dest="kind", default="snl", help="a block kind, or 'none'")
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--census-every", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--flush", choices=["on", "off"], default="off")
    p.add_argument("--seed", type=int, default=0)
    add_renamed_option(p, "--output-file", "--out", type=Path, default=None, help="JSON lines, one per step")
    p.add_argument("--config", type=Path, default=None, help="watch the engine training this recipe instead")
    p.add_argument("--evaluate", action="store_true", help="with --config: evaluate the last checkpoint (as the demo)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of --config")
    args = p.parse_args()
    if args.config is not None:
        _engine_census(args.config, args.overrides, args.output_file, evaluate=args.evaluate)
        return
    if args.overrides:
        p.error("key=value overrides need --config")

    from snl_video.models import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    flush = args.flush == "on"
    torch.set_flush_denormal(flush)
    model = build_model(args.model, num_classes=args.classes, nonlocal_blocks=None if args.kind == "none" else args.kind)
    x = torch.randn(args.batch, 3, args.num_frames, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    model.train()

    def step() -> float:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    rows: list[dict[str, Any]] = []
    out = args.output_file.open("w") if args.output_file else None
    for i in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        seconds = time.perf_counter() - t0
        row: dict[str, Any] = {"step": i, "seconds": seconds, "loss": loss}
        if args.census_every and (i % args.census_every == 0 or i == args.steps - 1):
            torch.set_flush_denormal(False)  # count what the arithmetic produces, unflushed
            row["state"] = _state_census(model, opt)
            census = _OpCensus()
            # A census pass that changes nothing: BN statistics and grads are saved and restored.
            saved_buffers = {k: v.clone() for k, v in model.named_buffers()}
            saved_grads = [q.grad for q in model.parameters()]
            opt.zero_grad(set_to_none=True)
            with census:
                loss_c = torch.nn.functional.cross_entropy(model(x), y)
                census.phase = "backward"
                loss_c.backward()
            for q, g in zip(model.parameters(), saved_grads):
                q.grad = g
            with torch.no_grad():
                for k, v in model.named_buffers():
                    v.copy_(saved_buffers[k])
            row["ops"] = dict(census.counts.most_common(12))
            row["op_elements"] = {k: census.elements[k] for k in row["ops"]}
            torch.set_flush_denormal(flush)
        rows.append(row)
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()
        census_txt = ""
        if "state" in row:
            total_state = {k: sum(v.values()) for k, v in row["state"].items()}
            top_ops = ", ".join(f"{k} {v}" for k, v in list(row["ops"].items())[:4])
            census_txt = f"  state {total_state}  ops: {top_ops}"
        print(f"step {i:3d}  {seconds:7.2f} s  loss {loss:.3e}{census_txt}", flush=True)
    times = sorted(r["seconds"] for r in rows[1:])
    if times:
        import numpy as np

        print(f"{args.model}+{args.kind} flush={args.flush} threads={args.threads}: steps 1..{args.steps - 1}: "
              f"p50 {np.percentile(times, 50):.2f} s, p95 {np.percentile(times, 95):.2f} s, max {times[-1]:.2f} s")


if __name__ == "__main__":
    main()
