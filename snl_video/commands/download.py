"""``snl-video download ucf101|hmdb51 --root DIR``: the official archives and split files, resumable, extracted."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("download", help="download and extract UCF-101 or HMDB-51 (resumable)")
    p.add_argument("dataset", choices=["ucf101", "hmdb51"], help="which dataset")
    p.add_argument("--root", type=Path, required=True, help="folder for the archives and the extracted trees")
    p.add_argument("--base-url", default=None, help="fetch the archives from this folder URL instead (a mirror)")
    p.add_argument("--no-extract", action="store_true", help="only download and check the archives")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..data.download import DatasetDownloadError, download_dataset

    try:
        root = download_dataset(args.dataset, args.root, base_url=args.base_url, extract=not args.no_extract,
                                progress=not args.no_progress)
    except DatasetDownloadError as exc:
        raise UserError(str(exc)) from exc
    if args.no_extract:
        print(f"downloaded the {args.dataset} archives to {root}")
    elif args.dataset == "ucf101":
        print(f"next: snl-video prepare ucf101 --videos {root / 'UCF-101'} --splits {root / 'ucfTrainTestlist'} "
              "--output-dir data/ucf101_prepared")
    else:
        print(f"next: snl-video prepare hmdb51 --videos {root / 'hmdb51_org'} --splits "
              f"{root / 'testTrainMulti_7030_splits'} --output-dir data/hmdb51_prepared")
    return 0
