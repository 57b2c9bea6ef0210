"""``snl-video make-synthetic <source>``: a small dataset in a source's format whose classes differ only in motion.

One sub-command per registered dataset source that has a synthetic writer
(:attr:`snl_video.data.source_spec.DatasetSource.synthetic`), its options read from that
record; it prints the ``snl-video prepare`` command that reads the files back.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .prepare import add_source_options
from .renamed import add_renamed_option


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data.sources import registered_sources

    p = subparsers.add_parser("make-synthetic", help="generate a synthetic dataset in an official format")
    sub = p.add_subparsers(dest="dataset", metavar="<dataset>", required=True)
    for source in registered_sources():
        if source.synthetic is None:
            continue
        s = sub.add_parser(source.name, help=source.synthetic.help)
        add_renamed_option(s, "--output-dir", "--out", type=Path, required=True, help="the folder written (the prepare command is printed)")
        add_source_options(s, source.synthetic.options)
        s.add_argument("--no-progress", action="store_true")
        s.set_defaults(func=run)


def prepare_command(source_name: str, prepare_options: dict[str, str]) -> str:
    """The ``snl-video prepare`` command line that reads what a synthetic writer wrote."""
    from ..data.sources import get_source

    flags = {o.dest: o.flag for o in get_source(source_name).options}
    parts = [f"{flags[dest]} {shlex.quote(value)}" for dest, value in prepare_options.items()]
    return " ".join(["snl-video prepare", source_name, *parts, "--output-dir OUT"])


def run(args: argparse.Namespace) -> int:
    from ..data.sources import get_source

    source = get_source(args.dataset)
    assert source.synthetic is not None, f"{source.name} has no synthetic writer"
    options = {o.dest: getattr(args, o.dest) for o in source.synthetic.options}
    prepare_options = source.synthetic.write(args.output_dir, options, progress=not args.no_progress)
    print(f"wrote {args.output_dir}; prepare with: {prepare_command(source.name, prepare_options)}")
    return 0
