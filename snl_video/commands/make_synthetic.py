"""``snl-video make-synthetic <source>``: a small dataset in a source's format whose classes differ only in motion.

One sub-command per registered dataset source that has a synthetic writer
(:attr:`snl_video.data.source_spec.DatasetSource.synthetic`), its options read from that
record; it prints the ``snl-video prepare`` command that reads the files back. Besides
them, ``relations`` writes the relational task (docs/relations_task.md): other *content* (classes
that differ only in a relation between two distant events) in the ``folder`` source's layout.
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
    r = sub.add_parser("relations", help="OUT/videos/<Class>/ for `prepare folder`: 4 classes that differ only in a "
                                         "relation between two distant events (docs/relations_task.md)")
    add_renamed_option(r, "--output-dir", "--out", type=Path, required=True, help="writes OUTPUT_DIR/videos/")
    r.add_argument("--videos-per-class", type=int, default=60, help="videos per class (default: 60)")
    r.add_argument("--size", type=int, default=64, help="frame width and height in pixels (default: 64)")
    add_renamed_option(r, "--frames-per-video", "--frames", type=int, default=16,
                       help="frames per video, all of them one clip (default: 16)")
    r.add_argument("--distractors", type=int, default=3, help="moving distractor squares (default: 3)")
    r.add_argument("--relation", choices=["colour_shift", "shape_colour"], default="colour_shift",
                   help="what the class is: the colour step between the events (default; the studies' task) or "
                        "shape and colour equality (harder)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=run_relations)


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


def run_relations(args: argparse.Namespace) -> int:
    from ..data.relations import make_relations_dataset

    root = make_relations_dataset(args.output_dir, videos_per_class=args.videos_per_class, size=args.size,
                                  video_frames=args.frames_per_video, distractors=args.distractors, seed=args.seed,
                                  relation=args.relation, progress=not args.no_progress)
    prepare = prepare_command("folder", {"videos": str(root), "group_regex": "_g([0-9]+)_"})
    print(f"wrote {root}; prepare with: {prepare} --short-side {args.size} --num-frames {args.frames_per_video}")
    return 0
