#!/usr/bin/env python
"""Measured utilisation: achieved FLOP/s of a backbone ± non-local blocks and its fraction of this machine's peak.

For each kind (``none`` = the backbone alone) and precision (``fp32``; ``bf16`` autocast), on
one random batch already on the device:

* **forward**: ``model(x)`` in eval mode under ``torch.no_grad`` (inference);
* **train step**: forward + cross-entropy + backward + SGD step (momentum 0.9), train mode.

Each is timed over ``--steps`` calls after a warm-up; the row reports p50 seconds, the FLOPs
(``2 × MACs`` of the project's counter, :func:`snl_video.models.profiling.count_macs`; a
training step counts as 3 forwards), the achieved TFLOP/s (FLOPs ÷ p50) and the fraction of
the **peak measured in the same run**: a large square matrix product in the same precision
(fp32 rows against the fp32 product, bf16 rows against the bf16 product). On a GPU that
fraction is the MFU (fp32 there means TF32 off for matmuls, PyTorch's default; cuDNN
convolutions may use TF32). Flush-to-zero is on, as in the engine.

    OMP_NUM_THREADS=1 python scripts/bench_utilisation.py --threads 1 --steps 5
    python scripts/bench_utilisation.py --device cuda --batch 16 --steps 20 --channels-last
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snl_video.commands.renamed import add_renamed_option  # noqa: E402

PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="r3d50")
    p.add_argument("--nonlocal", dest="kinds", nargs="+", default=["none", "snl"],
                   help="kinds to measure ('none': no block)")
    p.add_argument("--precision", nargs="+", choices=sorted(PRECISIONS), default=["fp32", "bf16"])
    add_renamed_option(p, "--num-frames", "--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--steps", type=int, default=5, help="timed calls of each measurement")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true", help="channels_last_3d model and input")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--work", type=Path, default=Path("runs/bench_utilisation"), help="where the results go")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from snl_video.benchmarking import format_table
    from snl_video.engine.runtime import set_flush_denormal_all_threads
    from snl_video.models import build_model
    from snl_video.utilisation import (TRAIN_STEP_FORWARDS, forward_flops, measure_matmul_peak, step_time_stats,
                                       time_calls)

    if args.threads:
        torch.set_num_threads(args.threads)
    set_flush_denormal_all_threads(True)
    device = torch.device(args.device)
    if device.type == "cpu" and "fp16" in args.precision:
        p.error("--precision fp16 is for CUDA devices; use fp32 or bf16 on the CPU")
    dtypes = {name: getattr(torch, PRECISIONS[name]) if PRECISIONS[name] else None for name in args.precision}
    peaks = {name: measure_matmul_peak(device, dtype or torch.float32) for name, dtype in dtypes.items()}
    for name, peak in peaks.items():
        logging.info("peak of a %s matrix product on %s: %.3f TFLOP/s", name, device, peak / 1e12)

    rows = []
    for kind in args.kinds:
        torch.manual_seed(0)
        model = build_model(args.model, num_classes=args.classes,
                            nonlocal_blocks=None if kind == "none" else kind).to(device)
        x = torch.randn(args.batch, 3, args.num_frames, args.size, args.size, device=device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last_3d)
            x = x.contiguous(memory_format=torch.channels_last_3d)
        y = torch.randint(0, args.classes, (args.batch,), device=device)
        flops = forward_flops(model, x)
        for name, dtype in dtypes.items():
            autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

            def forward() -> None:
                with torch.no_grad(), autocast:
                    model(x)

            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

            def train_step() -> None:
                with autocast:
                    loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            for work, fn, work_flops, train in (("forward", forward, flops, False),
                                                ("train step", train_step, TRAIN_STEP_FORWARDS * flops, True)):
                model.train(train)
                stats = step_time_stats(time_calls(fn, device=device, steps=args.steps, warmup=args.warmup))
                achieved = work_flops / stats["p50_s"]
                rows.append({"nonlocal": kind, "precision": name, "work": work, **stats, "gflop": work_flops / 1e9,
                             "achieved_tflops": achieved / 1e12, "peak_tflops": peaks[name] / 1e12,
                             "fraction_of_peak": achieved / peaks[name]})
                logging.info("%s %s %s: p50 %.3f s, %.3f TFLOP/s, %.1f%% of the %s peak", kind, name, work,
                             stats["p50_s"], achieved / 1e12, 100 * achieved / peaks[name], name)
            model.zero_grad(set_to_none=True)

    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads")
    title = (f"{args.model}, {args.num_frames}x{args.size}x{args.size} clips, batch {args.batch}, {where}"
             f"{', channels_last_3d' if args.channels_last else ''}; p50 of {args.steps} calls after {args.warmup} "
             f"warm-up; flush-to-zero on")
    columns = [("nonlocal", "non-local", "s"), ("precision", "precision", "s"), ("work", "measured", "s"),
               ("p50_s", "p50 s", ".3f"), ("gflop", "GFLOP", ".1f"), ("achieved_tflops", "TFLOP/s", ".3f"),
               ("peak_tflops", "peak TFLOP/s", ".3f"), ("fraction_of_peak", "of peak" if device.type == "cpu"
                                                        else "MFU", ".1%")]
    notes = ("\nFLOPs: 2 x MACs of snl_video.models.profiling.count_macs (convolutions, linear layers, every matrix "
             "product incl. the non-local affinity products; not element-wise ops, norms, FFTs); a train step counts "
             "as 3 forwards. Peak: best of repeated square matrix products in the row's precision, measured in this "
             "run (" + ", ".join(f"{k} {v / 1e12:.3f} TFLOP/s" for k, v in peaks.items()) + ").\n")
    table = f"{title}\n\n{format_table(rows, columns)}\n{notes}"
    print(table)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "bench_utilisation.md").write_text(table)
    (args.work / "bench_utilisation.json").write_text(json.dumps(rows, indent=1))
    print(f"written: {args.work / 'bench_utilisation.md'}, {args.work / 'bench_utilisation.json'}")


if __name__ == "__main__":
    main()
