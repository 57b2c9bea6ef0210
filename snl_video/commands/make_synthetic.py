"""``snl-video make-synthetic ucf101|hmdb51|folder|list|relations``: small datasets in each source's format whose
classes differ only in motion (``relations``: only in a relation between two distant events)."""

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

    h = sub.add_parser("hmdb51", help="HMDB-51 tree + testTrainMulti_7030_splits/ (prepare with --per-class)")
    h.add_argument("--out", type=Path, required=True, help="writes OUT/hmdb51_org/ and OUT/testTrainMulti_7030_splits/")
    h.add_argument("--classes", type=int, default=4, help="number of classes (default: 4)")
    h.add_argument("--train-per-class", type=int, default=8, help="train videos per class and split (default: 8)")
    h.add_argument("--test-per-class", type=int, default=4, help="test videos per class and split (default: 4)")
    h.add_argument("--unused-per-class", type=int, default=2, help="videos marked 0 (unused) per split (default: 2)")
    h.add_argument("--clips-per-source", type=int, default=2, help="clips cut from one source video (default: 2)")
    f = sub.add_parser("folder", help="OUT/videos/<Class>/<Class>_gGG_cCC.avi for `prepare folder`")
    f.add_argument("--out", type=Path, required=True, help="writes OUT/videos/")
    f.add_argument("--classes", type=int, default=4, help="number of classes (default: 4)")
    f.add_argument("--videos-per-class", type=int, default=10, help="videos per class (default: 10)")
    f.add_argument("--clips-per-group", type=int, default=2, help="clips per group gGG (default: 2)")
    li = sub.add_parser("list", help="OUT/videos/ + train/test lists for `prepare list`")
    li.add_argument("--out", type=Path, required=True, help="writes OUT/videos/ and the lists")
    li.add_argument("--classes", type=int, default=4, help="number of classes (default: 4)")
    li.add_argument("--videos-per-class", type=int, default=10, help="videos per class (default: 10)")
    li.add_argument("--test-per-class", type=int, default=3, help="test videos per class (default: 3)")
    li.add_argument("--format", choices=["mmaction2", "csv"], default="mmaction2",
                    help="mmaction2: 'path label' (0-based) + classes.txt; csv: 'path,label' with class names")
    r = sub.add_parser("relations", help="OUT/videos/<Class>/ for `prepare folder`: 4 classes that differ only in a "
                                         "relation between two distant events (docs/relations_task.md)")
    r.add_argument("--out", type=Path, required=True, help="writes OUT/videos/")
    r.add_argument("--videos-per-class", type=int, default=60, help="videos per class (default: 60)")
    r.add_argument("--size", type=int, default=64, help="frame width and height in pixels (default: 64)")
    r.add_argument("--frames", type=int, default=16, help="frames per video, all of them one clip (default: 16)")
    r.add_argument("--distractors", type=int, default=3, help="moving distractor squares (default: 3)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=run_relations)
    for parser in (h, f, li):
        parser.add_argument("--frames", type=int, default=24, help="frames per video, before jitter (default: 24)")
        parser.add_argument("--frame-jitter", type=int, default=6, help="add 0..N extra frames per video (default: 6)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")
        parser.set_defaults(func=run_other)


def run_other(args: argparse.Namespace) -> int:
    from ..data import synthetic

    common = dict(num_classes=args.classes, num_frames=args.frames, frame_jitter=args.frame_jitter, seed=args.seed,
                  progress=not args.no_progress)
    if args.dataset == "hmdb51":
        synthetic.make_synthetic_hmdb51(args.out, train_per_class=args.train_per_class,
                                        test_per_class=args.test_per_class, unused_per_class=args.unused_per_class,
                                        clips_per_source=args.clips_per_source, **common)
        print(f"wrote {args.out / 'hmdb51_org'} and {args.out / 'testTrainMulti_7030_splits'}; prepare with: snl-video "
              f"prepare hmdb51 --videos {args.out / 'hmdb51_org'} --splits {args.out / 'testTrainMulti_7030_splits'} "
              f"--per-class {args.train_per_class},{args.test_per_class} --out OUT")
    elif args.dataset == "folder":
        root = synthetic.make_synthetic_folder(args.out, videos_per_class=args.videos_per_class,
                                               clips_per_group=args.clips_per_group, **common)
        print(f"wrote {root}; prepare with: snl-video prepare folder --videos {root} --group-regex '_g([0-9]+)_' "
              f"--out OUT")
    else:
        synthetic.make_synthetic_list(args.out, videos_per_class=args.videos_per_class,
                                      test_per_class=args.test_per_class, list_format=args.format, **common)
        if args.format == "mmaction2":
            lists = (f"--train {args.out / 'train.txt'} --test {args.out / 'test.txt'} --classes "
                     f"{args.out / 'classes.txt'} --label-base 0")
        else:
            lists = f"--train {args.out / 'train.csv'} --test {args.out / 'test.csv'}"
        print(f"wrote {args.out}; prepare with: snl-video prepare list {lists} --root {args.out / 'videos'} --out OUT")
    return 0


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


def run_relations(args: argparse.Namespace) -> int:
    from ..data.relations import make_relations_dataset

    root = make_relations_dataset(args.out, videos_per_class=args.videos_per_class, size=args.size,
                                  num_frames=args.frames, distractors=args.distractors, seed=args.seed,
                                  progress=not args.no_progress)
    print(f"wrote {root}; prepare with: snl-video prepare folder --videos {root} --group-regex '_g([0-9]+)_' "
          f"--short-side {args.size} --clip-len {args.frames} --out OUT")
    return 0
