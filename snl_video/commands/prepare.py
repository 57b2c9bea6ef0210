"""``snl-video prepare <source>``: verify a dataset's videos and write them in the prepared format.

One sub-command per registered dataset source (:data:`snl_video.data.sources.SOURCES`), its
options read from the source's record; the source turns them into the common manifest, and
the preparation after that is one job (:func:`snl_video.data.prepare.prepare_manifest`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, get_args
from .renamed import add_renamed_option

if TYPE_CHECKING:
    from ..data.source_spec import SourceOption

logger = logging.getLogger(__name__)


def _add_job_options(p: argparse.ArgumentParser) -> None:
    """The options every source shares (what happens after the manifest)."""
    from ..data.prepare import ShortVideos, Storage

    add_renamed_option(p, "--output-dir", "--out", type=Path, required=True, help="output directory (re-run with the same to resume)")
    add_renamed_option(p, "--num-workers", "--workers", type=int, default=1, help="parallel processes (default: 1)")
    p.add_argument("--allow-missing", action="store_true", help="prepare the videos present even if listed ones are missing")
    p.add_argument("--short-side", type=int, default=128, help="resize frames to this short side; 0 keeps the source size")
    add_renamed_option(p, "--num-frames", "--clip-len", type=int, default=16, help="frames per clip; shorter videos count as short (default: 16)")
    p.add_argument("--short-videos", choices=get_args(ShortVideos), default="loop",
                   help="videos shorter than a clip: keep them for loop padding (default) or skip them")
    p.add_argument("--storage", choices=get_args(Storage), default="jpeg",
                   help="packed JPEGs (default: ~8x smaller than raw frames at quality 90, ~2.5x the AVIs) or npy: "
                        "raw frames, the fastest to read (~2x) at ~20x the AVIs")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality 1..100 with --storage jpeg (default: 90)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_source_options(parser: argparse.ArgumentParser, options: Sequence[SourceOption]) -> None:
    """A source's inputs (data records, :class:`~snl_video.data.source_spec.SourceOption`) as argparse options."""
    for option in options:
        kwargs: dict = {"help": option.help, "default": option.default, "dest": option.dest}
        if option.required:
            kwargs["required"] = True
        if option.type is not str:
            kwargs["type"] = option.type
        if option.choices is not None:
            kwargs["choices"] = list(option.choices)
        if option.metavar is not None:
            kwargs["metavar"] = option.metavar
        add_renamed_option(parser, option.flag, *option.old_flags, **kwargs)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data.sources import registered_sources

    p = subparsers.add_parser("prepare", help="verify a dataset and write it in the fast prepared format")
    sub = p.add_subparsers(dest="dataset", metavar="<dataset>", required=True)
    for source in registered_sources():  # one sub-command per registered source, its options from its record
        s = sub.add_parser(source.name, help=source.description)
        add_source_options(s, source.options)
        _add_job_options(s)
        s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.prepare import PrepareBusyError
    from ..data.sources import get_source
    from ..engine.api import prepare
    from ..errors import UserError

    given = {o.dest: getattr(args, o.dest) for o in get_source(args.dataset).options}
    try:
        report = prepare(args.dataset, output_dir=args.output_dir, options={k: v for k, v in given.items() if v is not None},
                         num_workers=args.num_workers, allow_missing=args.allow_missing, short_side=args.short_side,
                         num_frames=args.num_frames, short_videos=args.short_videos, storage=args.storage,
                         jpeg_quality=args.jpeg_quality, progress=not args.no_progress)
    except PrepareBusyError as exc:
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        import shlex

        from ..errors import Interrupted

        done = sum(1 for _ in (args.output_dir / "videos").rglob("*.json")) if (args.output_dir / "videos").is_dir() else 0
        raise Interrupted(f"kept {done} prepared videos in {args.output_dir}; resume with the same command: "
                          f"snl-video {shlex.join(args.argv)}") from None
    counts_text = ", ".join(f"{k}: {v}" for k, v in sorted(report["counts"].items()))
    print(f"prepared {args.output_dir}: {counts_text}; missing: {len(report['missing'])}; report: {args.output_dir / 'report.json'}")
    return 0
