"""``snl-video eval --config FILE --checkpoint CKPT``: clip- and video-level test metrics."""

from __future__ import annotations

import argparse
import os
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint: clip/video top-1/top-5, per-class, confusion")
    p.add_argument("--config", type=Path, required=True, help="the recipe the checkpoint was trained with")
    p.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint written by `snl-video train`")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. eval.num_clips=5")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <runtime.output_dir>/eval)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.evaluate import run_evaluation

    from ..cli import Interrupted

    cfg = load_config(args.config, args.overrides)
    try:
        report = run_evaluation(cfg, args.checkpoint, out_dir=args.out)
    except KeyboardInterrupt:
        import shlex

        raise Interrupted("nothing was written (the outputs are written at the end); run it again with: "
                          f"snl-video {shlex.join(args.argv)}") from None
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({k: v for k, v in report.to_json_dict().items()
                          if k in ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy",
                                   "num_classes", "num_videos")}, indent=1))
        print(f"outputs: {args.out or Path(cfg.runtime.output_dir) / 'eval'}")
    return 0
