"""``snl-video eval --config FILE --checkpoint CKPT``: clip- and video-level test metrics."""

from __future__ import annotations

import argparse
import os
import json
from pathlib import Path

from ..errors import InvalidValueError
from .renamed import add_renamed_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint: clip/video top-1/top-5, per-class, confusion")
    p.add_argument("--config", type=Path, default=None,
                   help="the recipe the checkpoint was trained with (default: the recipe stored in the checkpoint; "
                        "required for checkpoints written before they stored it)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="a checkpoint written by `snl-video train`")
    src.add_argument("--weights", default=None,
                     help="instead: a registry name or foreign checkpoint file, evaluated without training "
                          "(its head must have the dataset's classes, or use --head-from)")
    p.add_argument("--head-from", type=Path, default=None, metavar="CKPT",
                   help="with --weights: take the classifier (fc) from this training checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. eval.num_clips=5")
    add_renamed_option(p, "--output-dir", "--out", type=Path, default=None, help="output folder (default: <runtime.output_dir>/eval)")
    p.add_argument("--allow-train-overlap", action="store_true",
                   help="evaluate even when the test subset holds videos the checkpoint was trained on (the data was "
                        "re-split since); without it that is an error naming how many")
    from .predict import add_precision_argument

    add_precision_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import Interrupted

    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C: one line (cli.py), exit 130
        import shlex

        raise Interrupted("nothing was written (the outputs are written at the end); run it again with: "
                          f"snl-video {shlex.join(args.argv)}") from None


def _run(args: argparse.Namespace) -> int:
    from ..engine.api import evaluate, evaluation_recipe
    import torch

    from ..engine.precision import amp_setting, autocast_dtype

    if args.precision != "fp32":  # one spelling: --precision is runtime.amp for eval
        autocast_dtype(args.precision, "cuda" if torch.cuda.is_available() else "cpu")  # refused where emulated
        args.overrides = [*args.overrides, f"runtime.amp={amp_setting(args.precision)}"]

    if args.head_from is not None and args.weights is None:
        raise InvalidValueError("--weights needs --config RECIPE (the dataset and protocol); --head-from goes with --weights")
    # the recipe once (a checkpoint's own is read from the file), then the same function as snl_video.evaluate
    cfg = evaluation_recipe(checkpoint=args.checkpoint, weights=args.weights, config=args.config,
                            overrides=args.overrides)
    report = evaluate(checkpoint=args.checkpoint, weights=args.weights, config=cfg, head_from=args.head_from,
                      output_dir=args.output_dir, allow_train_overlap=args.allow_train_overlap)
    _print_summary(report, args.output_dir or Path(cfg.runtime.output_dir) / "eval")
    return 0


def _print_summary(report, out: Path) -> None:
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({k: v for k, v in report.to_json_dict().items()
                          if k in ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy",
                                   "num_classes", "num_videos")}, indent=1))
        print(f"outputs: {out}")
