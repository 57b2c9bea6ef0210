"""Copy a finished study's results into a folder for publication, with how and where it ran.

    python scripts/record_study_run.py runs/relations_family docs/results/relations_family \
        --command "snl-video study configs/studies/relations_family.yaml --out runs/relations_family --jobs 2" \
        --commit a57530b --load-log runs/relations_family.load

Writes ``DEST/summary.json``, ``table.md``, ``table.csv``, ``results.png`` (copied from the
study folder), ``cells.csv`` (variant, seed, value, seconds, threads of every finished cell)
and ``run.md``: the command, the commit, the machine (CPU model, cores, memory, torch and
Python versions), the first and last cell's finishing times, the time per cell (median,
range, total) and the machine's load averages sampled during the run (``--load-log``: lines
of ``uptime`` output, one a minute). Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import statistics
import sys
from pathlib import Path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def _loads(path: Path | None) -> list[float]:
    """The 1-minute load averages in an ``uptime`` log."""
    if path is None or not path.is_file():
        return []
    return [float(m.group(1)) for m in re.finditer(r"load average: ([0-9.]+)", path.read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--command", required=True, help="the command that ran the study, as typed")
    parser.add_argument("--commit", required=True, help="the commit the study ran from")
    parser.add_argument("--load-log", type=Path, help="uptime lines sampled during the run")
    parser.add_argument("--note", default="", help="a sentence on the conditions (other work on the machine, ...)")
    args = parser.parse_args(argv)

    summary_path = args.study_dir / "summary.json"
    if not summary_path.is_file():
        print(f"error: {summary_path} does not exist: is {args.study_dir} a study folder?", file=sys.stderr)
        return 2
    summary = json.loads(summary_path.read_text())
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in ("summary.json", "table.md", "table.csv", "results.png"):
        tmp = args.dest / (name + ".tmp")
        shutil.copyfile(args.study_dir / name, tmp)
        os.replace(tmp, args.dest / name)

    cells = []
    for record in sorted(args.study_dir.glob("cells/*/seed*/cell.json")):
        cell = json.loads(record.read_text())
        if cell.get("status") == "done":
            metrics = record.parent / "eval" / "metrics.json"
            cells.append({"variant": cell["variant"], "seed": cell["seed"], "value": cell["value"],
                          "seconds": cell.get("seconds"), "threads": cell.get("threads"),
                          "finished": metrics.stat().st_mtime if metrics.is_file() else record.stat().st_mtime})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["variant", "seed", "value", "seconds", "threads"], lineterminator="\n")
    writer.writeheader()
    for cell in sorted(cells, key=lambda c: (c["variant"], c["seed"])):
        writer.writerow({k: cell[k] for k in writer.fieldnames})
    _atomic_write(args.dest / "cells.csv", buffer.getvalue())

    import datetime

    import torch

    seconds = [c["seconds"] for c in cells if c["seconds"] is not None]
    stamp = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: E731
    loads = _loads(args.load_log)
    lines = [
        f"# How the `{summary['name']}` study was run",
        "",
        f"* command: `{args.command}`",
        f"* commit: `{args.commit}`",
        f"* machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, {_memory_gib()} memory; "
        f"Python {platform.python_version()}, torch {torch.__version__}, {platform.system()} {platform.release()}",
        f"* cells: {len(cells)} finished, {len(summary.get('missing', []))} missing"
        + (f"; the first finished {stamp(min(c['finished'] for c in cells))}, the last "
           f"{stamp(max(c['finished'] for c in cells))}" if cells else ""),
    ]
    if seconds:
        lines.append(f"* time per cell (train + final eval, {cells[0]['threads']} thread(s) each): median "
                     f"{statistics.median(seconds):.0f} s, range {min(seconds):.0f}–{max(seconds):.0f} s, "
                     f"{sum(seconds) / 3600:.2f} cell-hours in all")
    if loads:
        lines.append(f"* load average (1 min) sampled every minute during the run: median "
                     f"{statistics.median(loads):.2f}, range {min(loads):.2f}–{max(loads):.2f} ({len(loads)} samples)")
    if args.note:
        lines.append(f"* conditions: {args.note}")
    lines += ["", "Per cell: `cells.csv`. The table: `table.md`; the figure: `results.png`; everything: `summary.json`.", ""]
    _atomic_write(args.dest / "run.md", "\n".join(lines))
    print(f"wrote {args.dest}: summary.json, table.md, table.csv, results.png, cells.csv, run.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
