#!/usr/bin/env python
"""Seconds of one training step (forward + backward + SGD update) of registered models, and their
ratio to the first one, at a study's batch and clip size.

Each model gets its own fresh random batch every step (no repeated batch, so no denormal
gradients build up) and flush-to-zero is on, as in ``snl-video train``. The models are timed
in interleaved rounds after warm-up steps, so a change in machine load touches all of them;
the median and minimum over rounds are reported. Example (the relations study's FFC variant
against its baseline, one thread):

    OMP_NUM_THREADS=1 python scripts/time_train_step.py --threads 1 \\
        r3d10:widen_factor=0.5,conv1_t_size=3 ffc_r3d10:widen_factor=0.5,conv1_t_size=3,ratio_global=0.5

(``name:key=value,...`` passes model options, values read as YAML.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snl_video.commands.renamed import add_renamed_option  # noqa: E402


def parse_model(text: str) -> tuple[str, dict]:
    """``name:key=value,...`` → (name, options)."""
    import yaml

    name, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    return name, options


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="name:key=value,... (the first one is the baseline of the ratios)")
    p.add_argument("--batch", type=int, default=16)
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=4)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)

    import torch
    from torch.nn import functional as F

    from snl_video.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # this thread's; with --threads 1 it is the only one
    torch.manual_seed(0)
    runs = []
    for text in args.models:
        name, options = parse_model(text)
        model = build_model(name, num_classes=args.num_classes, **options).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        runs.append((text, model, optimizer, []))

    def step(model, optimizer) -> float:
        clips = torch.randn(args.batch, 3, args.num_frames, args.size, args.size)
        labels = torch.randint(0, args.num_classes, (args.batch,))
        start = time.perf_counter()
        loss = F.cross_entropy(model(clips), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    for _, model, optimizer, _ in runs:
        for _ in range(args.warmup):
            step(model, optimizer)
    for _ in range(args.rounds):
        for _, model, optimizer, seconds in runs:
            seconds.append(step(model, optimizer))
    base = statistics.median(runs[0][3])
    print(f"batch {args.batch}, {args.num_frames}x{args.size}x{args.size}, {torch.get_num_threads()} thread(s), "
          f"{args.rounds} interleaved rounds after {args.warmup} warm-up steps")
    print(f"{'model':<70} {'median s':>9} {'min s':>7} {'ratio':>6}")
    for text, _, _, seconds in runs:
        median = statistics.median(seconds)
        print(f"{text:<70} {median:>9.3f} {min(seconds):>7.3f} {median / base:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
