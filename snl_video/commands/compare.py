"""``snl-video compare RUN_DIR...``: a Table-7-style comparison of finished runs.

Each run directory holds ``config.yaml`` (written by ``train``) and ``eval/metrics.json``
(written by ``eval``, or by ``train`` at the end). The table lists top-1 / top-5 (clip
level, the paper's protocol), GMACs and parameters of the model at the run's input size,
and the deltas against the baseline row (the first run without non-local blocks, else the
first run). It is printed and written as Markdown and CSV.

UCF-101 results are usually the mean over its three official splits: runs whose configs
differ only in ``data.split`` (and in their name and where / how fast they ran: output
folder, device, loader workers, ...) are also summarised in
``table_splits.md`` / ``.csv`` — mean and sample standard deviation over the splits, and
the deltas of the means against the baseline group.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ..errors import MissingFileError
from .renamed import add_renamed_option

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare", help="Table-7-style table of finished runs (top-1/top-5, GMACs, params, deltas)")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders (runtime.output_dir of each)")
    add_renamed_option(p, "--output-dir", "--out", type=Path, default=Path("runs/compare"), help="folder for table.md, table.csv and curves.png")
    p.add_argument("--level", choices=["clip", "video"], default="clip", help="which accuracies (default: clip, as the paper)")
    p.add_argument("--no-profile", action="store_true", help="skip counting GMACs/params (no model build)")
    p.add_argument("--no-curves", action="store_true", help="do not plot the runs' training curves (curves.png)")
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare runs evaluated under different protocols (clips x crops, clip size): a warning, not an error")
    p.set_defaults(func=run)


def collect_row(run_dir: Path, *, level: str = "clip", profile: bool = True) -> dict[str, Any]:
    """One table row from a run folder; a missing file is an error naming it and the command that writes it."""
    from ..config import load_config

    config_file, metrics_file = run_dir / "config.yaml", run_dir / "eval" / "metrics.json"
    if not config_file.is_file():
        raise MissingFileError(f"{config_file} is missing: is {run_dir} a folder written by `snl-video train`?")
    if not metrics_file.is_file():
        raise MissingFileError(f"{metrics_file} is missing: run `snl-video eval --config {config_file} "
                                f"--checkpoint {run_dir / 'checkpoints' / 'last.pt'}`")
    cfg = load_config(config_file)
    metrics = json.loads(metrics_file.read_text())
    row: dict[str, Any] = {
        "run": cfg.name,
        "split": cfg.data.split,
        "level": level,
        "protocol": eval_protocol(metrics, cfg, level),
        "videos": metrics.get("num_videos"),
        "epochs": _epochs_trained(metrics, run_dir),
        "classes": cfg.model.num_classes,
        "selection": selection_protocol(run_dir, cfg),
        "group": recipe_key(cfg),
        "model": cfg.model.name,
        "nonlocal": cfg.nonlocal_blocks.kind if cfg.nonlocal_blocks else "-",
        "top1": float(metrics[f"{level}_top1"]),
        "top5": float(metrics[f"{level}_top5"]),
        "gmacs": None,
        "gflops_paper": None,
        "params_m": None,
    }
    if profile:
        from ..engine.builders import build_model_from_config
        from ..models import profile_model

        model = build_model_from_config(cfg, load_weights=False)
        prof = profile_model(model, input_shape=(1, 3, cfg.data.num_frames, cfg.data.crop_size, cfg.data.crop_size))
        row["gmacs"], row["params_m"] = prof.macs / 1e9, prof.params / 1e6
        row["gflops_paper"] = prof.macs_table7 / 1e9  # Table 7's "FLOPs" (r3d50: 10.10 G)
    return row


def eval_protocol(metrics: dict[str, Any], cfg: Any, level: str) -> str:
    """How the accuracies of ``level`` were measured, e.g. ``1 clip x 1 crop, 16f/1 @112`` or
    ``10 clips x 3 crops, 16f/1 @112`` (from metrics.json; the run's config for older files)."""
    frames = metrics.get("num_frames", cfg.data.num_frames)
    stride = metrics.get("sampling_stride", cfg.data.sampling_stride)
    size = metrics.get("crop_size", cfg.data.crop_size)
    if level == "clip":
        clips, crops = 1, 1
    elif "eval_num_clips" in metrics:
        clips, crops = metrics["eval_num_clips"], metrics["eval_num_crops"]
    elif str(metrics.get("video_protocol", "")).startswith("as clip level"):
        clips, crops = 1, 1
    else:
        clips, crops = cfg.eval.num_clips, cfg.eval.num_crops
    return f"{clips} clip{'s' if clips != 1 else ''} x {crops} crop{'s' if crops != 1 else ''} {frames}f/{stride} @{size}"


def _epochs_trained(metrics: dict[str, Any], run_dir: Path) -> int | None:
    if metrics.get("epoch") is not None:
        return int(metrics["epoch"])
    from ..engine.train import read_history

    epochs = [h["epoch"] for h in read_history(run_dir) if h.get("kind") == "epoch"]
    return max(epochs) if epochs else None


def protocol_problems(rows: list[dict[str, Any]]) -> list[str]:
    """Lines naming what differs between the runs' evaluations (protocol, number of test videos)."""
    lines = []
    protocols = {r["protocol"] for r in rows}
    if len(protocols) > 1:
        lines.append("the runs were evaluated under different protocols: "
                     + "; ".join(f"{r['run']}: {r['protocol']}" for r in rows))
    videos = {r["videos"] for r in rows if r["videos"] is not None}
    if len(videos) > 1:
        lines.append("the runs scored different numbers of test videos: "
                     + "; ".join(f"{r['run']}: {r['videos']}" for r in rows))
    return lines


def selection_protocol(run_dir: Path, cfg: Any) -> str:
    """Which subset chose the run's ``best.pt``: ``val (N)``, ``test (N)`` from its epoch records;
    ``test`` for runs recorded before the field existed; ``none`` without periodic evaluation."""
    from ..engine.train import read_history

    chosen = [h for h in read_history(run_dir) if h.get("kind") == "epoch" and "selection_subset" in h]
    if chosen:
        return f"{chosen[-1]['selection_subset']} ({chosen[-1].get('selection_videos', '?')})"
    return "test" if cfg.eval.every_epochs else "none"


# Settings that say where or how fast a run went, not what it computed: two runs that differ
# only in these (and in data.split) are the same recipe.
_NOT_THE_RECIPE = {
    "data": ("split", "root", "splits_dir", "num_workers"),
    "eval": ("batch_size",),
    "runtime": ("output_dir", "device", "progress", "log_every", "tensorboard", "checkpoint_every"),
}


def recipe_key(cfg: Any) -> str:
    """The config without its split and bookkeeping settings, as a canonical string."""
    from ..config import config_to_dict

    d = config_to_dict(cfg)
    d.pop("name", None)  # a label: "r3d50_snl_split2" is still the r3d50_snl recipe
    for section, keys in _NOT_THE_RECIPE.items():
        for key in keys:
            d.get(section, {}).pop(key, None)
    return json.dumps(d, sort_keys=True, default=str)


def baseline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row the deltas are taken against: the first without non-local blocks, else the first."""
    return next((r for r in rows if r["nonlocal"] == "-"), rows[0])


def format_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells, with deltas against the baseline row."""
    base = baseline(rows)

    def delta(value: float | None, ref: float | None, fmt: str) -> str:
        if value is None or ref is None:
            return "-"
        return f"{value - ref:+{fmt}}" if r is not base else ""

    header = ["run", "split", "selection", "level", "protocol", "videos", "epochs", "model", "non-local", "top-1",
              "top-5", "GFLOPs (paper)", "GMACs", "params (M)", "head", "Δtop-1", "Δtop-5", "ΔGFLOPs (paper)",
              "ΔGMACs", "Δparams (M)"]

    def value(x: float | None, fmt: str) -> str:
        return "-" if x is None else f"{x:{fmt}}"

    cells = []
    for r in rows:
        cells.append([
            r["run"], str(r["split"]), r.get("selection", "-"), r.get("level", "clip"), r.get("protocol", "-"),
            "-" if r.get("videos") is None else str(r["videos"]), "-" if r.get("epochs") is None else str(r["epochs"]),
            r["model"], r["nonlocal"], f"{r['top1']:.2f}", f"{r['top5']:.2f}",
            value(r["gflops_paper"], ".2f"), value(r["gmacs"], ".3f"), value(r["params_m"], ".2f"),
            f"{r['classes']}-class" if r.get("classes") else "-",
            delta(r["top1"], base["top1"], ".2f"), delta(r["top5"], base["top5"], ".2f"),
            delta(r["gflops_paper"], base["gflops_paper"], ".4f"), delta(r["gmacs"], base["gmacs"], ".4f"),
            delta(r["params_m"], base["params_m"], ".3f"),
        ])
    return header, cells


def split_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per recipe (runs equal but for ``data.split``), in first-seen order: the splits
    and the mean / sample standard deviation of top-1 and top-5 over them."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    out = []
    for members in groups.values():
        splits = [m["split"] for m in members]
        if len(set(splits)) != len(splits):
            logger.warning("runs %s repeat one recipe on the same split (%s): not averaged over splits",
                           [m["run"] for m in members], sorted(splits))
            continue
        first = members[0]
        summary = {k: first[k] for k in ("run", "model", "nonlocal", "gflops_paper", "gmacs", "params_m")}
        summary["splits"] = sorted(splits)
        for metric in ("top1", "top5"):
            values = np.array([m[metric] for m in members], dtype=np.float64)
            summary[metric] = float(values.mean())
            summary[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out.append(summary)
    return out


def format_split_rows(means: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the mean-over-splits table, deltas of the means against the baseline."""
    base = baseline(means)
    header = ["recipe", "splits", "model", "non-local", "top-1 mean", "top-1 std", "top-5 mean", "top-5 std",
              "Δtop-1", "Δtop-5"]
    cells = []
    for r in means:
        deltas = ["", ""] if r is base else [f"{r['top1'] - base['top1']:+.2f}", f"{r['top5'] - base['top5']:+.2f}"]
        cells.append([r["run"], " ".join(map(str, r["splits"])), r["model"], r["nonlocal"], f"{r['top1']:.2f}",
                      f"{r['top1_std']:.2f}", f"{r['top5']:.2f}", f"{r['top5_std']:.2f}", *deltas])
    return header, cells


def _write_tables(header: list[str], cells: list[list[str]], md: Path, csv_path: Path) -> str:
    """The table as Markdown (returned, and written) and CSV, both atomically."""
    import io

    from ..fileio import atomic_write_text

    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    table = "\n".join(lines)
    atomic_write_text(md, table + "\n")
    buffer = io.StringIO()
    w = csv.writer(buffer, lineterminator="\n")
    w.writerow(header)
    w.writerows(cells)
    atomic_write_text(csv_path, buffer.getvalue())
    return table


def run(args: argparse.Namespace) -> int:
    compare(args.runs, output_dir=args.output_dir, level=args.level, profile=not args.no_profile,
            curves=not args.no_curves, allow_mixed=getattr(args, "allow_mixed", False))
    return 0


def compare(runs: Sequence[str | os.PathLike[str]], *, output_dir: str | os.PathLike[str] = "runs/compare",
            level: Literal["clip", "video"] = "clip", profile: bool = True, curves: bool = True,
            allow_mixed: bool = False) -> list[Path]:
    """Compare finished runs (``snl-video compare``, also ``snl_video.compare``): one table row
    per run folder (accuracy, deltas against the baseline, cost, protocol) written to
    ``output_dir`` with the training curves; returns the files written. Runs evaluated under
    different protocols are refused unless ``allow_mixed``."""
    runs = [Path(r) for r in runs]
    output_dir = Path(output_dir)
    rows = [collect_row(d, level=level, profile=profile) for d in runs]
    mixed = protocol_problems(rows)
    if mixed and any("protocols" in line for line in mixed) and not allow_mixed:
        from ..errors import UserError

        raise UserError(f"{mixed[0]}: their accuracies are not comparable; re-evaluate them alike "
                        f"(snl-video eval ... eval.num_clips=N eval.num_crops=M) or pass --allow-mixed")
    header, cells = format_rows(rows)
    table = _write_tables(header, cells, output_dir / "table.md", output_dir / "table.csv")
    base = baseline(rows)
    notes = [f"{level}-level accuracy (%) of each run's eval/metrics.json; deltas against the baseline row "
             f"{base['run']!r}. GFLOPs (paper): the convention of the paper's Table 7 (conv/linear products + 2 per "
             f"norm element); GMACs: every product; params include the classifier head of the size shown (the "
             f"paper's 47.02 M for r3d50 counts a 400-class head); selection: the subset (videos) that chose best.pt — "
             f"'test' means model selection saw the test split."]
    notes += [f"WARNING: {line}" for line in mixed]
    for line in mixed:
        logger.warning("%s", line)
    from ..fileio import atomic_write_text

    atomic_write_text(output_dir / "table.md", table + "\n\n" + "\n".join(f"> {n}" for n in notes) + "\n")
    print("\n".join(notes))
    print(table)
    written = [output_dir / "table.md", output_dir / "table.csv"]
    means = split_means(rows)
    if means and any(len(m["splits"]) > 1 for m in means):
        split_table = _write_tables(*format_split_rows(means), output_dir / "table_splits.md",
                                    output_dir / "table_splits.csv")
        print(f"\nmean over splits ({level} level, sample std):")
        print(split_table)
        written += [output_dir / "table_splits.md", output_dir / "table_splits.csv"]
    if curves:
        from ..engine.plots import plot_training_curves
        from ..engine.train import read_history

        histories = {f"{r['run']} (split {r['split']})" if sum(o["run"] == r["run"] for o in rows) > 1 else r["run"]:
                     read_history(d) for r, d in zip(rows, runs)}
        if any(h for h in histories.values()):
            plot_training_curves(histories, output_dir / "curves.png")
            written.append(output_dir / "curves.png")
        else:
            logger.warning("no metrics.jsonl in the runs: no curves.png")
    print("written: " + ", ".join(str(p) for p in written))
    return written
