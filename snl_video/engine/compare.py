"""Comparison of finished runs: a Table-7-style table, and the protocol check behind it.

Each run folder holds ``config.yaml`` (written by ``train``) and ``eval/metrics.json``
(written by ``eval``, or by ``train`` at the end). :func:`compare_runs` reads them into
typed :class:`RunRow` records — top-1 / top-5 at one level, the evaluation protocol, the
number of test videos, the epochs trained, the model-selection subset and (optionally) GMACs
and parameters of the model at the run's input size — and refuses runs evaluated under
different protocols, whose accuracies are not comparable. :func:`write_comparison` writes the
table (deltas against the baseline row: the first run without non-local blocks, else the
first run) as Markdown and CSV, the mean over UCF-101's splits when runs differ only in
``data.split``, and the runs' training curves.

``snl-video compare`` is a thin shell over these two functions; the study runner
(:mod:`snl_video.engine.study`) uses :func:`collect_row` and :func:`protocol_problems`
on its cells.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ..fileio import atomic_write_text
from ..errors import InvalidValueError, MissingFileError

logger = logging.getLogger(__name__)

__all__ = ["Level", "RunRow", "Comparison", "MixedProtocolError", "collect_row", "eval_protocol",
           "protocol_problems", "views_of", "selection_protocol", "recipe_key", "baseline_row", "format_rows", "split_means",
           "format_split_rows", "markdown_table", "write_table", "compare_runs", "write_comparison", "profile_config",
           "block_label", "run_labels"]

Level = Literal["clip", "video"]


@dataclass
class RunRow:
    """One finished run as the comparison sees it (accuracies in percent, as metrics.json)."""

    run: str
    run_dir: Path
    split: int | str
    level: Level
    protocol: str
    videos: int | None
    epochs: int | None
    classes: int
    selection: str
    group: str
    model: str
    nonlocal_kind: str
    top1: float
    top5: float
    gmacs: float | None = None
    gflops_paper: float | None = None
    params_m: float | None = None
    #: the run's whole eval/metrics.json, for callers that want another metric
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the dataset source its recipe names (``data.dataset``); "" when unknown
    dataset: str = ""


class MixedProtocolError(InvalidValueError):
    """The runs were evaluated under different protocols: their accuracies are not comparable."""


def profile_config(cfg: Any) -> tuple[int, int, int]:
    """``(macs, params, macs_table7)`` of the config's model at its input size (no weights loaded)."""
    from ..models import profile_model
    from .builders import build_model_from_config

    model = build_model_from_config(cfg, load_weights=False)
    prof = profile_model(model, input_shape=(1, 3, cfg.data.num_frames, cfg.data.crop_size, cfg.data.crop_size))
    return prof.macs, prof.params, prof.macs_table7


def collect_row(run_dir: str | os.PathLike[str], *, level: Level = "clip", profile: bool = True) -> RunRow:
    """One table row from a run folder; a missing file is an error naming it and the command that writes it."""
    from ..config import load_config

    run_dir = Path(run_dir)
    config_file, metrics_file = run_dir / "config.yaml", run_dir / "eval" / "metrics.json"
    if not config_file.is_file():
        raise MissingFileError(f"{config_file} is missing: is {run_dir} a folder written by `snl-video train`?")
    if not metrics_file.is_file():
        raise MissingFileError(f"{metrics_file} is missing: run `snl-video eval --config {config_file} "
                                f"--checkpoint {run_dir / 'checkpoints' / 'last.pt'}`")
    cfg = load_config(config_file)
    metrics = json.loads(metrics_file.read_text())
    row = RunRow(
        run=cfg.name, run_dir=run_dir, split=cfg.data.split, level=level,
        protocol=eval_protocol(metrics, cfg, level), videos=metrics.get("num_videos"),
        epochs=_epochs_trained(metrics, run_dir), classes=cfg.model.num_classes,
        selection=selection_protocol(run_dir, cfg), group=recipe_key(cfg), model=cfg.model.name,
        nonlocal_kind=block_label(cfg),
        top1=float(metrics[f"{level}_top1"]), top5=float(metrics[f"{level}_top5"]), metrics=metrics,
        dataset=str(cfg.data.dataset),
    )
    if profile:
        macs, params, macs_table7 = profile_config(cfg)
        row.gmacs, row.params_m = macs / 1e9, params / 1e6
        row.gflops_paper = macs_table7 / 1e9  # Table 7's "FLOPs" (r3d50: 10.10 G)
    return row


def block_label(cfg: Any) -> str:
    """The non-local blocks of a run as a table names them: the kind and its options
    (``snl filter=cayley``, ``snl order=3``), so runs of one kind with another graph filter
    read apart; ``-`` without blocks."""
    blocks = cfg.nonlocal_blocks
    if not blocks:
        return "-"
    options = " ".join(f"{key}={_option_text(value)}" for key, value in sorted(blocks.options.items()))
    return f"{blocks.kind} {options}" if options else blocks.kind


def _option_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_option_text(v) for v in value) + "]"
    return str(value)


def run_labels(rows: Sequence[RunRow]) -> list[str]:
    """A label per run that tells it apart from the other runs of the same split: its recipe
    name; where two share one, the name with its blocks (``tiny (snl filter=cayley)``); where
    those are the same too, its run folder's name, else the folder's path below the runs'
    common folder."""
    labels = [r.run for r in rows]

    def clashing() -> list[int]:
        keys = [(label, str(r.split)) for label, r in zip(labels, rows)]
        return [i for i, key in enumerate(keys) if keys.count(key) > 1]

    for i in clashing():
        labels[i] = f"{rows[i].run} ({rows[i].nonlocal_kind})"
    for i in clashing():
        labels[i] = rows[i].run_dir.name
    still = clashing()
    if still:
        common = Path(os.path.commonpath([str(rows[i].run_dir.resolve()) for i in still]))
        for i in still:
            labels[i] = rows[i].run_dir.resolve().relative_to(common).as_posix() or str(rows[i].run_dir)
    return labels


def eval_protocol(metrics: dict[str, Any], cfg: Any, level: Level) -> str:
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


def views_of(protocol: str) -> str:
    """The views part of an :func:`eval_protocol` string (``"10 clips x 3 crops"`` of
    ``"10 clips x 3 crops 16f/1 @112"``): what runs of different recipes (their own clip and
    size) must still share to be compared."""
    return protocol.rsplit(" ", 2)[0]


def _epochs_trained(metrics: dict[str, Any], run_dir: Path) -> int | None:
    if metrics.get("epoch") is not None:
        return int(metrics["epoch"])
    from .train import read_history

    epochs = [h["epoch"] for h in read_history(run_dir) if h.get("kind") == "epoch"]
    return max(epochs) if epochs else None


def protocol_problems(rows: Sequence[RunRow]) -> list[str]:
    """Lines naming what differs between the runs' evaluations (protocol, number of test videos).

    Runs of one model must share the whole protocol (views per video, clip length, stride and
    size); runs of different models (the new families beside Table 7's rows, each with the clip
    it was built for) only the views per video (:func:`views_of`), and their clips stay in the
    table's protocol column."""
    lines = []
    datasets = {(r.dataset, r.classes) for r in rows}
    if len(datasets) > 1:  # first: the strongest reason the scores are not comparable
        lines.append("the runs were evaluated on different datasets: "
                     + "; ".join(f"{r.run}: {r.dataset or '?'} ({r.classes} classes)" for r in rows))
    by_model: dict[str, set[str]] = {}
    for r in rows:
        by_model.setdefault(r.model, set()).add(r.protocol)
    if any(len(p) > 1 for p in by_model.values()) or len({views_of(r.protocol) for r in rows}) > 1:
        lines.append("the runs were evaluated under different protocols: "
                     + "; ".join(f"{r.run}: {r.protocol}" for r in rows))
    videos = {r.videos for r in rows if r.videos is not None}
    if len(videos) > 1:
        lines.append("the runs scored different numbers of test videos: "
                     + "; ".join(f"{r.run}: {r.videos}" for r in rows))
    return lines


def selection_protocol(run_dir: str | os.PathLike[str], cfg: Any) -> str:
    """Which subset chose the run's ``best.pt``: ``val (N)``, ``test (N)`` from its epoch records;
    ``test`` for runs recorded before the field existed; ``none`` without periodic evaluation."""
    from .train import read_history

    chosen = [h for h in read_history(run_dir) if h.get("kind") == "epoch" and "selection_subset" in h]
    if chosen:
        return f"{chosen[-1]['selection_subset']} ({chosen[-1].get('selection_videos', '?')})"
    return "test" if cfg.eval.every_epochs else "none"


# Settings that say where or how fast a run went, not what it computed: two runs that differ
# only in these (and in data.split) are the same recipe.
_NOT_THE_RECIPE = {
    "data": ("split", "root", "splits_dir", "num_workers"),
    "eval": ("batch_size",),
    "runtime": ("output_dir", "device", "progress", "log_every", "tensorboard", "loggers", "checkpoint_every"),
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


def baseline_row(rows: Sequence[Any]) -> Any:
    """The row the deltas are taken against: the first without non-local blocks, else the first."""
    return next((r for r in rows if r.nonlocal_kind == "-"), rows[0])


def _fmt(x: float | None, fmt: str) -> str:
    return "-" if x is None else f"{x:{fmt}}"


def format_rows(rows: Sequence[RunRow]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells, with deltas against the baseline row."""
    base = baseline_row(rows)
    mixed = len({r.dataset for r in rows}) > 1  # allowed with --allow-mixed: each split says its dataset
    header = ["run", "split", "selection", "level", "protocol", "videos", "epochs", "model", "non-local", "top-1",
              "top-5", "GFLOPs (paper)", "GMACs", "params (M)", "head", "Δtop-1", "Δtop-5", "ΔGFLOPs (paper)",
              "ΔGMACs", "Δparams (M)"]
    cells = []
    for r in rows:
        def delta(value: float | None, ref: float | None, fmt: str) -> str:
            if value is None or ref is None:
                return "-"
            return f"{value - ref:+{fmt}}" if r is not base else ""

        cells.append([
            r.run, f"{r.dataset} {r.split}" if mixed else str(r.split), r.selection, r.level, r.protocol,
            "-" if r.videos is None else str(r.videos), "-" if r.epochs is None else str(r.epochs),
            r.model, r.nonlocal_kind, f"{r.top1:.2f}", f"{r.top5:.2f}",
            _fmt(r.gflops_paper, ".2f"), _fmt(r.gmacs, ".3f"), _fmt(r.params_m, ".2f"),
            f"{r.classes}-class" if r.classes else "-",
            delta(r.top1, base.top1, ".2f"), delta(r.top5, base.top5, ".2f"),
            delta(r.gflops_paper, base.gflops_paper, ".4f"), delta(r.gmacs, base.gmacs, ".4f"),
            delta(r.params_m, base.params_m, ".3f"),
        ])
    return header, cells


@dataclass
class SplitMean:
    """One recipe over several splits: mean and sample standard deviation of top-1 / top-5."""

    run: str
    model: str
    nonlocal_kind: str
    splits: list[int | str]
    top1: float
    top1_std: float
    top5: float
    top5_std: float
    gmacs: float | None = None
    gflops_paper: float | None = None
    params_m: float | None = None


def split_means(rows: Sequence[RunRow]) -> list[SplitMean]:
    """One row per recipe (runs equal but for ``data.split``), in first-seen order: the splits
    and the mean / sample standard deviation of top-1 and top-5 over them."""
    groups: dict[str, list[RunRow]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    out = []
    for members in groups.values():
        splits = [m.split for m in members]
        if len(set(splits)) != len(splits):
            logger.warning("runs %s repeat one recipe on the same split (%s): not averaged over splits",
                           [m.run for m in members], sorted(splits, key=str))
            continue
        stats = {}
        for metric in ("top1", "top5"):
            values = np.array([getattr(m, metric) for m in members], dtype=np.float64)
            stats[metric] = float(values.mean())
            stats[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        first = members[0]
        out.append(SplitMean(run=first.run, model=first.model, nonlocal_kind=first.nonlocal_kind,
                             splits=sorted(splits, key=str), gmacs=first.gmacs, gflops_paper=first.gflops_paper,
                             params_m=first.params_m, **stats))
    return out


def format_split_rows(means: Sequence[SplitMean]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the mean-over-splits table, deltas of the means against the baseline."""
    base = baseline_row(means)
    header = ["recipe", "splits", "model", "non-local", "top-1 mean", "top-1 std", "top-5 mean", "top-5 std",
              "Δtop-1", "Δtop-5"]
    cells = []
    for r in means:
        deltas = ["", ""] if r is base else [f"{r.top1 - base.top1:+.2f}", f"{r.top5 - base.top5:+.2f}"]
        cells.append([r.run, " ".join(map(str, r.splits)), r.model, r.nonlocal_kind, f"{r.top1:.2f}",
                      f"{r.top1_std:.2f}", f"{r.top5:.2f}", f"{r.top5_std:.2f}", *deltas])
    return header, cells


def markdown_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """An aligned Markdown table (no trailing newline)."""
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def write_table(header: Sequence[str], cells: Sequence[Sequence[str]], md: str | os.PathLike[str],
                csv_path: str | os.PathLike[str], *, notes: Sequence[str] = (), appendix: str = "") -> str:
    """The table as aligned Markdown (returned, and written with ``notes`` as quoted lines below
    it, then ``appendix``: e.g. published rows, which stay out of the CSV) and CSV, both atomically."""
    table = markdown_table(header, cells)
    text = table + "\n" + ("\n" + "\n".join(f"> {n}" for n in notes) + "\n" if notes else "")
    if appendix:
        text += "\n" + appendix.rstrip("\n") + "\n"
    atomic_write_text(md, text)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(cells)
    atomic_write_text(csv_path, buffer.getvalue())
    return table


@dataclass
class Comparison:
    """The rows of :func:`compare_runs`, the baseline among them, the protocol warnings (only
    when mixed protocols were allowed, or test-video counts differ) and the means over splits
    (empty unless some recipe was run on several splits)."""

    rows: list[RunRow]
    level: Level
    baseline: RunRow
    warnings: list[str]
    split_means: list[SplitMean]
    #: published rows shown beside the measured ones (a name of ``snl_video.engine.published.REFERENCES``)
    reference: str | None = None
    #: the files :func:`write_comparison` wrote (filled by ``snl_video.compare``)
    written: list[Path] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What the table's numbers are, and the warnings, one line each."""
        notes = [f"{self.level}-level accuracy (%) of each run's eval/metrics.json; deltas against the baseline row "
                 f"{self.baseline.run!r}. GFLOPs (paper): the convention of the paper's Table 7 (conv/linear products "
                 f"+ 2 per norm element); GMACs: every product; params include the classifier head of the size shown "
                 f"(the paper's 47.02 M for r3d50 counts a 400-class head); selection: the subset (videos) that chose "
                 f"best.pt — 'test' means model selection saw the test split."]
        if len({r.model for r in self.rows}) > 1 and len({r.protocol for r in self.rows}) > 1:
            notes.append("rows of different models are fed their own clips (protocol column) at their own cost "
                         "(GFLOPs, params): a delta between them compares two models, not one block.")
        if self.reference:
            notes.append(f"published rows {self.reference!r} follow the table: reported by their authors, not measured "
                         f"here.")
        return notes + [f"WARNING: {line}" for line in self.warnings]


def compare_runs(run_dirs: Sequence[str | os.PathLike[str]], *, level: Level = "clip", profile: bool = True,
                 allow_mixed: bool = False, log_warnings: bool = True, reference: str | None = None) -> Comparison:
    """Read finished runs into a :class:`Comparison`.

    The warnings (mixed protocols allowed, runs trained on different videos, ...) are in
    :attr:`Comparison.warnings` and its notes; ``log_warnings`` also logs them (the command
    line prints the notes instead, so each warning is said once).

    Raises:
        FileNotFoundError: a run folder lacks ``config.yaml`` or ``eval/metrics.json``.
        MixedProtocolError: the runs were evaluated under different protocols (unless ``allow_mixed``).
    """
    if not run_dirs:
        raise InvalidValueError("no run folders to compare")
    if reference is not None:
        from .published import reference_rows

        reference_rows(reference)  # an unknown name is refused before any run is read
    rows = [collect_row(d, level=level, profile=profile) for d in run_dirs]
    for row, label in zip(rows, run_labels(rows)):  # runs named alike (or of one kind) read apart
        row.run = label
    problems = protocol_problems(rows)
    if not allow_mixed and any("datasets" in line for line in problems):
        raise MixedProtocolError(f"{problems[0]}: their accuracies (and the deltas between them) are not "
                                 "comparable; compare runs of one dataset, or pass --allow-mixed (allow_mixed=True)")
    if not allow_mixed and any("protocols" in line for line in problems):
        raise MixedProtocolError(f"{problems[0]}: their accuracies are not comparable; re-evaluate them alike "
                                 f"(snl-video eval ... eval.num_clips=N eval.num_crops=M) or pass --allow-mixed "
                                 f"(allow_mixed=True)")
    from .records import check_same_dataset

    problems = problems + check_same_dataset(run_dirs)  # trained on other videos: said, as mixed protocols are
    if log_warnings:
        for line in problems:
            logger.warning("%s", line)
    means = split_means(rows)
    return Comparison(rows=rows, level=level, baseline=baseline_row(rows), warnings=problems,
                      split_means=means if any(len(m.splits) > 1 for m in means) else [], reference=reference)


def write_comparison(comparison: Comparison, out: str | os.PathLike[str], *, curves: bool = True) -> list[Path]:
    """Write ``table.md`` / ``table.csv`` (with the notes), ``table_splits.*`` when there are means
    over splits, and ``curves.png`` (the runs' training curves) into ``out``; return the paths."""
    out = Path(out)
    appendix = ""
    if comparison.reference:
        from .published import reference_markdown

        appendix = reference_markdown(comparison.reference)
    write_table(*format_rows(comparison.rows), out / "table.md", out / "table.csv", notes=comparison.notes(),
                appendix=appendix)
    written = [out / "table.md", out / "table.csv"]
    if comparison.split_means:
        write_table(*format_split_rows(comparison.split_means), out / "table_splits.md", out / "table_splits.csv")
        written += [out / "table_splits.md", out / "table_splits.csv"]
    if curves:
        from .plots import plot_training_curves
        from .train import read_history

        rows = comparison.rows
        histories = {f"{r.run} (split {r.split})" if sum(o.run == r.run for o in rows) > 1 else r.run:
                     read_history(r.run_dir) for r in rows}
        if any(h for h in histories.values()):
            plot_training_curves(histories, out / "curves.png")
            written.append(out / "curves.png")
        else:
            logger.warning("no metrics.jsonl in the runs: no curves.png")
    return written
