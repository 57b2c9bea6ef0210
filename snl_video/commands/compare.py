"""``snl-video compare RUN_DIR...``: a Table-7-style comparison of finished runs.

Argument parsing over :func:`snl_video.engine.compare.compare_runs` and
:func:`~snl_video.engine.compare.write_comparison`: the table lists top-1 / top-5 (clip level,
the paper's protocol, or video level), GMACs and parameters, and the deltas against the
baseline row; runs of one recipe on several UCF-101 splits are also averaged over the splits.
Runs evaluated under different protocols, or on different datasets, are refused unless ``--allow-mixed``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.published import REFERENCES
from .renamed import add_renamed_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare", help="Table-7-style table of finished runs (top-1/top-5, GMACs, params, deltas)")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders (runtime.output_dir of each)")
    add_renamed_option(p, "--output-dir", "--out", type=Path, default=Path("runs/compare"), help="folder for table.md, table.csv and curves.png")
    p.add_argument("--level", choices=["clip", "video"], default="clip", help="which accuracies (default: clip, as the paper)")
    p.add_argument("--no-profile", action="store_true", help="skip counting GMACs/params (no model build)")
    p.add_argument("--no-curves", action="store_true", help="do not plot the runs' training curves (curves.png)")
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare runs evaluated under different protocols (clips x crops, clip size) or on different "
                        "datasets (each split then names its dataset): a warning, not an error")
    p.add_argument("--reference", choices=sorted(REFERENCES), default=None,
                   help="also show these published rows (e.g. table7: the paper's Table 7), in a table of their own "
                        "marked as published, not measured")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.api import compare
    from ..engine.compare import format_rows, format_split_rows, markdown_table

    comparison = compare(args.runs, output_dir=args.output_dir, level=args.level, profile=not args.no_profile,
                         curves=not args.no_curves, allow_mixed=getattr(args, "allow_mixed", False),
                         log_warnings=False,  # printed with the notes below: each warning once
                         reference=args.reference)
    print("\n".join(comparison.notes()))
    print(markdown_table(*format_rows(comparison.rows)))
    if comparison.split_means:
        print(f"\nmean over splits ({args.level} level, sample std):")
        print(markdown_table(*format_split_rows(comparison.split_means)))
    if comparison.reference:
        from ..engine.published import reference_markdown

        print("\n" + reference_markdown(comparison.reference))
    print("written: " + ", ".join(str(p) for p in comparison.written))
    return 0
