"""``snl-video features``: per-video features (pooled, or a stage's map) of a folder, list file or prepared dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .predict import add_model_arguments, add_precision_argument, model_arguments
from .renamed import add_renamed_option


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data.decoding import BACKENDS

    p = subparsers.add_parser("features", help="extract per-video features (resumable; one .npy per video + index.csv)")
    p.add_argument("inputs", nargs="+", metavar="VIDEOS",
                   help="video files or folders, a list file (.txt: one path per line), or a prepared dataset folder")
    add_model_arguments(p)
    add_renamed_option(p, "--output-dir", "--out", type=Path, required=True, help="output folder (re-run with the same to resume)")
    p.add_argument("--layer", default=None, help="a stage (layer1..layer4) or a placed block key: its feature map "
                                                 "instead of the pooled pre-head features")
    p.add_argument("--per-clip", action="store_true", help="keep one feature per clip x crop instead of the mean")
    add_renamed_option(p, "--num-clips", "--clips", type=int, default=None, help="uniform clips per video (default: the model's protocol)")
    add_renamed_option(p, "--num-crops", "--crops", type=int, choices=[1, 3], default=None, help="crops per clip (default: as --num-clips)")
    p.add_argument("--backend", choices=BACKENDS, default=None, help="decoder (default: PyAV)")
    add_renamed_option(p, "--num-workers", "--workers", type=int, default=0, help="decoding processes (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="--out holds features of other settings (model, layer, clips, input): remove them and "
                        "recompute (without it that is an error; the same settings resume)")
    add_precision_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.api import features

    report = features(args.inputs, **model_arguments(args), output_dir=args.output_dir, layer=args.layer, per_clip=args.per_clip,
                              num_clips=args.num_clips, num_crops=args.num_crops, backend=args.backend,
                              num_workers=args.num_workers, progress=not args.no_progress, overwrite=args.overwrite,
                              precision=args.precision)
    print(f"features: {report.written} written, {report.skipped} already there, {len(report.failed)} failed; "
          f"index: {report.index}")
    for video, reason in report.failed:
        print(f"  failed: {video}: {reason}", file=sys.stderr)
    return 0
