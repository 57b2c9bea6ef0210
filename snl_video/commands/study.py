"""``snl-video study SPEC.yaml --output-dir DIR``: a recipe × variants × seeds, with confidence intervals and paired tests.

Argument parsing over :mod:`snl_video.engine.study` (the spec format and the lifecycle are
documented there). Rerunning the same command resumes; ``--shard I/N`` runs one N-th of the
cells (a SLURM array or N machines sharing ``DIR``); ``--dry-run`` lists the cells, what each
variant changes and the projected time, and runs nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from ..errors import InvalidValueError
from .renamed import add_renamed_option


class _IntermixedParser(argparse.ArgumentParser):
    """Accepts ``key=value`` overrides after the options too (``SPEC --output-dir DIR key=value``):
    plain argparse binds every positional at the first positional it meets."""

    def parse_known_args(self, args=None, namespace=None):
        if getattr(self, "_intermixing", False):
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="run a study (recipe x variants x seeds) and summarise it with "
                                            "confidence intervals and paired tests against the baseline")
    p.add_argument("spec", type=Path, help="study spec YAML, or the name of a shipped one (e.g. studies/smoke; `snl-video config list`)")
    add_renamed_option(p, "--output-dir", "--out", type=Path, required=True, help="study folder: cells/<variant>/seed<k>/, summary.json, "
                                                           "table.md, table.csv, results.png")
    p.add_argument("--jobs", type=int, default=1, help="cells run at once, as separate processes sharing the CPU threads")
    p.add_argument("--shard", default="1/1", metavar="I/N", help="run only cells i with i = I-1 (mod N) (default 1/1)")
    p.add_argument("--dry-run", action="store_true", help="list cells, variant differences and projected time; run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars in the cells (runtime.progress=false)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for every cell, after the spec's")
    p.set_defaults(func=run)
    p.__class__ = _IntermixedParser  # same parser, intermixed positionals


def run(args: argparse.Namespace) -> int:
    from ..engine.study import dry_run_report, load_study_spec, parse_shard, run_study

    stray = [o for o in args.overrides if "=" not in o]
    if stray:
        raise InvalidValueError(f"{stray[0]!r} is not a key=value override")
    if args.jobs < 1:
        raise InvalidValueError(f"--jobs must be at least 1, got {args.jobs}")
    shard = parse_shard(args.shard)
    spec = load_study_spec(args.spec, args.overrides)
    if args.dry_run:
        print("\n".join(dry_run_report(spec, args.output_dir, shard=shard, jobs=args.jobs)))
        return 0
    try:
        result = run_study(spec, args.output_dir, jobs=args.jobs, shard=shard, progress=not args.no_progress)
    except KeyboardInterrupt:
        import shlex

        from ..errors import Interrupted

        raise Interrupted(f"finished cells are kept in {args.output_dir / 'cells'}, the running ones resume from their last "
                          f"epoch: run the same command again (snl-video {shlex.join(args.argv)})") from None
    failed = [o for o in result.outcomes if o.status == "failed"]
    print((args.output_dir / "table.md").read_text())
    print(f"study: {args.output_dir} (summary.json, table.md, table.csv, results.png, cells/)")
    if failed:
        print(f"{len(failed)} cell(s) failed: " + "; ".join(f"{o.cell.label}: {o.reason}" for o in failed))
    return 1 if failed else 0
