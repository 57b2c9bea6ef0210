"""``snl-video features``: per-video features (pooled, or a stage's map) of a folder, list file or prepared dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .predict import add_model_arguments, add_precision_argument, load_model_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("features", help="extract per-video features (resumable; one .npy per video + index.csv)")
    p.add_argument("inputs", nargs="+", metavar="VIDEOS",
                   help="video files or folders, a list file (.txt: one path per line), or a prepared dataset folder")
    add_model_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="output folder (re-run with the same to resume)")
    p.add_argument("--layer", default=None, help="a stage (layer1..layer4) or a placed block key: its feature map "
                                                 "instead of the pooled pre-head features")
    p.add_argument("--per-clip", action="store_true", help="keep one feature per clip x crop instead of the mean")
    p.add_argument("--clips", type=int, default=None, help="uniform clips per video (default: the model's protocol)")
    p.add_argument("--crops", type=int, choices=[1, 3], default=None, help="crops per clip (default: as --clips)")
    p.add_argument("--backend", choices=["pyav", "decord", "torchcodec"], default=None, help="decoder (default: PyAV)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_precision_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.features import collect_sources, extract_features

    collect_sources(args.inputs)  # bad paths fail before the model loads
    loaded = load_model_from_args(args)
    report = extract_features(loaded, args.inputs, args.out, layer=args.layer, per_clip=args.per_clip,
                              num_clips=args.clips, num_crops=args.crops, backend=args.backend,
                              num_workers=args.workers, progress=not args.no_progress)
    print(f"features: {report.written} written, {report.skipped} already there, {len(report.failed)} failed; "
          f"index: {report.index}")
    for video, reason in report.failed:
        print(f"  failed: {video}: {reason}", file=sys.stderr)
    return 0
