"""``snl-video prepare ucf101``: verify the listed videos and write them in the prepared format."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prepare", help="verify a dataset and write it in the fast prepared format")
    sub = p.add_subparsers(dest="dataset", metavar="<dataset>", required=True)
    u = sub.add_parser("ucf101", help="UCF-101 (official video tree + ucfTrainTestlist/)")
    u.add_argument("--videos", type=Path, required=True, help="the UCF-101/ folder holding one folder per class")
    u.add_argument("--splits", type=Path, required=True, help="the ucfTrainTestlist/ folder")
    u.add_argument("--out", type=Path, required=True, help="output directory (re-run with the same to resume)")
    u.add_argument("--split", choices=["1", "2", "3", "all"], default="all", help="which official split(s) (default: all)")
    u.add_argument("--workers", type=int, default=1, help="parallel processes (default: 1)")
    u.add_argument("--allow-missing", action="store_true", help="prepare the videos present even if listed ones are missing")
    u.add_argument("--short-side", type=int, default=128, help="resize frames to this short side; 0 keeps the source size")
    u.add_argument("--clip-len", type=int, default=16, help="frames per clip; shorter videos count as short (default: 16)")
    u.add_argument("--short-videos", choices=["loop", "skip"], default="loop",
                   help="videos shorter than a clip: keep them for loop padding (default) or skip them")
    u.add_argument("--storage", choices=["npy", "jpeg"], default="npy",
                   help="raw frames (fastest to read; ~20x the AVIs) or packed JPEGs (~8x smaller at quality 90, "
                        "~3x slower to read) (default: npy)")
    u.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality 1..100 with --storage jpeg (default: 90)")
    u.add_argument("--no-progress", action="store_true", help="no progress bar")
    u.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import UserError
    from ..data.prepare import PrepareBusyError, PrepareSettings, prepare_ucf101

    splits = [1, 2, 3] if args.split == "all" else [int(args.split)]
    try:
        settings = PrepareSettings(short_side=args.short_side, clip_len=args.clip_len, short_videos=args.short_videos,
                                   storage=args.storage, jpeg_quality=args.jpeg_quality)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    try:
        report = prepare_ucf101(
            args.videos,
            args.splits,
            args.out,
            splits=splits,
            workers=args.workers,
            allow_missing=args.allow_missing,
            settings=settings,
            progress=not args.no_progress,
        )
    except PrepareBusyError as exc:
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        import shlex

        from ..cli import Interrupted

        done = sum(1 for _ in (args.out / "videos").rglob("*.json")) if (args.out / "videos").is_dir() else 0
        raise Interrupted(f"kept {done} prepared videos in {args.out}; resume with the same command: "
                          f"snl-video {shlex.join(args.argv)}") from None
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report["counts"].items()))
    print(f"prepared {args.out}: {counts}; missing: {len(report['missing'])}; report: {args.out / 'report.json'}")
    return 0
