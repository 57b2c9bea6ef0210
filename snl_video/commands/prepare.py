"""``snl-video prepare ucf101|hmdb51|folder|list``: verify a dataset's videos and write them in the prepared format.

Every source turns its files into the common manifest (:mod:`snl_video.data.sources`);
the preparation after that is one job (:func:`snl_video.data.prepare.prepare_manifest`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def _add_job_options(p: argparse.ArgumentParser) -> None:
    """The options every source shares (what happens after the manifest)."""
    p.add_argument("--out", type=Path, required=True, help="output directory (re-run with the same to resume)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default: 1)")
    p.add_argument("--allow-missing", action="store_true", help="prepare the videos present even if listed ones are missing")
    p.add_argument("--short-side", type=int, default=128, help="resize frames to this short side; 0 keeps the source size")
    p.add_argument("--clip-len", type=int, default=16, help="frames per clip; shorter videos count as short (default: 16)")
    p.add_argument("--short-videos", choices=["loop", "skip"], default="loop",
                   help="videos shorter than a clip: keep them for loop padding (default) or skip them")
    p.add_argument("--storage", choices=["npy", "jpeg"], default="npy",
                   help="raw frames (fastest to read; ~20x the AVIs) or packed JPEGs (~8x smaller at quality 90, "
                        "~3x slower to read) (default: npy)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality 1..100 with --storage jpeg (default: 90)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _per_class(text: str) -> tuple[int, int]:
    try:
        train, test = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TRAIN,TEST (e.g. 70,30), got {text!r}") from None
    if train < 1 or test < 1:
        raise argparse.ArgumentTypeError(f"both counts must be >= 1, got {text!r}")
    return train, test


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prepare", help="verify a dataset and write it in the fast prepared format")
    sub = p.add_subparsers(dest="dataset", metavar="<dataset>", required=True)
    u = sub.add_parser("ucf101", help="UCF-101 (official video tree + ucfTrainTestlist/)")
    u.add_argument("--videos", type=Path, required=True, help="the UCF-101/ folder holding one folder per class")
    u.add_argument("--splits", type=Path, required=True, help="the ucfTrainTestlist/ folder")
    u.add_argument("--split", choices=["1", "2", "3", "all"], default="all", help="which official split(s) (default: all)")
    _add_job_options(u)
    u.set_defaults(func=run)

    h = sub.add_parser("hmdb51", help="HMDB-51 (class-folder tree + testTrainMulti_7030_splits/)")
    h.add_argument("--videos", type=Path, required=True,
                   help="the hmdb51_org/ folder holding one folder per class (the per-class RARs extracted)")
    h.add_argument("--splits", type=Path, required=True, help="the testTrainMulti_7030_splits/ folder (153 files)")
    h.add_argument("--split", choices=["1", "2", "3", "all"], default="all", help="which official split(s) (default: all)")
    h.add_argument("--per-class", type=_per_class, default=None, metavar="TRAIN,TEST",
                   help="videos per class in every split (default: the official 70,30 with 51 classes; state other "
                        "counts only for a subset or a synthetic set)")
    _add_job_options(h)
    h.set_defaults(func=run)

    f = sub.add_parser("folder", help="your videos: ROOT/<class>/<video>, subsets drawn per class")
    f.add_argument("--videos", type=Path, required=True, help="ROOT: one sub-folder of videos per class")
    f.add_argument("--val-fraction", type=float, default=0.0, help="share of each class held out for validation "
                                                                   "(default: 0)")
    f.add_argument("--test-fraction", type=float, default=0.2, help="share of each class held out for test (default: 0.2)")
    f.add_argument("--group-regex", default=None, metavar="REGEX",
                   help="videos whose names give the same match (first capture group) stay on one side, e.g. "
                        "'_g([0-9]+)_' for UCF-style names (default: every video is its own group)")
    f.add_argument("--seed", type=int, default=0, help="seed of the per-class draw (default: 0)")
    f.add_argument("--split-name", default="1", help="name of the split written (data.split; default: 1)")
    _add_job_options(f)
    f.set_defaults(func=run)

    li = sub.add_parser("list", help="your videos: train/test(/val) lists (mmaction2 'path label', SlowFast, CSV)")
    li.add_argument("--train", type=Path, required=True, help="training list: 'path label' or 'path,label' per line")
    li.add_argument("--test", type=Path, required=True, help="test list, same format")
    li.add_argument("--val", type=Path, default=None, help="validation list (optional; selects best.pt)")
    li.add_argument("--classes", type=Path, default=None,
                    help="class names in label order, one per line (or '<index> <name>'); default: the sorted names "
                         "in the lists")
    li.add_argument("--label-base", type=int, choices=[0, 1], default=None,
                    help="labels are integers counting from 0 (mmaction2, SlowFast) or 1; default: labels are names")
    li.add_argument("--root", type=Path, required=True, help="the folder the listed paths are relative to")
    li.add_argument("--split-name", default="1", help="name of the split written (data.split; default: 1)")
    _add_job_options(li)
    li.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..data.hmdb51 import OFFICIAL_PER_CLASS
    from ..data.prepare import PrepareBusyError, PrepareSettings, prepare_manifest
    from ..data.sources import folder_manifest, hmdb51_manifest, list_manifest, ucf101_manifest

    try:
        settings = PrepareSettings(short_side=args.short_side, clip_len=args.clip_len, short_videos=args.short_videos,
                                   storage=args.storage, jpeg_quality=args.jpeg_quality)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    # the manifest first: every split/list problem is reported before any video is touched
    if args.dataset in ("ucf101", "hmdb51"):
        if not args.videos.is_dir():
            raise UserError(f"--videos {args.videos} is not a directory")
        splits = [1, 2, 3] if args.split == "all" else [int(args.split)]
        if args.dataset == "ucf101":
            manifest = ucf101_manifest(args.splits, splits)
        else:
            manifest = hmdb51_manifest(args.splits, splits, per_class=args.per_class or OFFICIAL_PER_CLASS)
        videos_dir = args.videos
    elif args.dataset == "folder":
        manifest = folder_manifest(args.videos, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                                   group_regex=args.group_regex, seed=args.seed, split_name=args.split_name)
        videos_dir = args.videos
    else:
        lists = {"train": args.train, "test": args.test, **({"val": args.val} if args.val is not None else {})}
        manifest = list_manifest(lists, root=args.root, classes=args.classes, label_base=args.label_base,
                                 split_name=args.split_name)
        videos_dir = args.root
    counts = manifest.groupby(["split", "subset"]).size()
    logger.info("%s: %d classes; videos per split and subset: %s", args.dataset, manifest["label"].nunique(),
                ", ".join(f"{s}/{sub}: {n}" for (s, sub), n in counts.items()))
    try:
        report = prepare_manifest(manifest, videos_dir, args.out, dataset=args.dataset, workers=args.workers,
                                  allow_missing=args.allow_missing, settings=settings, progress=not args.no_progress)
    except PrepareBusyError as exc:
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        import shlex

        from ..errors import Interrupted

        done = sum(1 for _ in (args.out / "videos").rglob("*.json")) if (args.out / "videos").is_dir() else 0
        raise Interrupted(f"kept {done} prepared videos in {args.out}; resume with the same command: "
                          f"snl-video {shlex.join(args.argv)}") from None
    counts_text = ", ".join(f"{k}: {v}" for k, v in sorted(report["counts"].items()))
    print(f"prepared {args.out}: {counts_text}; missing: {len(report['missing'])}; report: {args.out / 'report.json'}")
    return 0
