"""``snl-video make-synthetic ucf101``: a small UCF-101-format dataset whose classes differ only in motion."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("make-synthetic", help="generate a synthetic dataset in an official format")
    sub = p.add_subparsers(dest="dataset", metavar="<dataset>", required=True)
    u = sub.add_parser("ucf101", help="UCF-101 tree + split files; classes differ only in motion over time")
    u.add_argument("--out", type=Path, required=True, help="writes OUT/UCF-101/ and OUT/ucfTrainTestlist/")
    u.add_argument("--classes", type=int, default=10, help="number of classes (default: 10)")
    u.add_argument("--videos-per-class", type=int, default=10, help="videos per class (default: 10)")
    u.add_argument("--frames", type=int, default=40, help="frames per video, before jitter (default: 40)")
    u.add_argument("--frame-jitter", type=int, default=8, help="add 0..N extra frames per video (default: 8)")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--noise", type=float, default=0.0, help="per-frame pixel noise std (realistic bit rates; default 0)")
    u.add_argument("--bit-rate", type=int, default=1_500_000, help="MPEG-4 target bit rate, bit/s (default: 1.5M)")
    u.add_argument("--no-progress", action="store_true")
    u.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import make_synthetic_ucf101

    make_synthetic_ucf101(
        args.out,
        num_classes=args.classes,
        videos_per_class=args.videos_per_class,
        num_frames=args.frames,
        frame_jitter=args.frame_jitter,
        seed=args.seed,
        noise=args.noise,
        bit_rate=args.bit_rate,
        progress=not args.no_progress,
    )
    print(f"wrote {args.out / 'UCF-101'} and {args.out / 'ucfTrainTestlist'}")
    return 0
