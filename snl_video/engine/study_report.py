"""A study's summary as a table (Markdown + CSV) and a figure (``results.png``).

Both read the ``summary.json`` mapping written by :func:`snl_video.engine.study.aggregate_study`
and nothing else, so they can be regenerated from a published summary.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from ..fileio import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["study_table", "write_study_tables", "plot_study"]


def _num(x: float | None, fmt: str = ".2f", sign: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+{fmt}}" if sign else f"{x:{fmt}}"


def _interval(ci: list[float] | None, sign: bool = False) -> str:
    return "-" if not ci else f"[{_num(ci[0], sign=sign)}, {_num(ci[1], sign=sign)}]"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def _clip(v: Mapping[str, Any]) -> str:
    inputs = v.get("input")
    if not inputs:
        return "-"
    return f"{inputs['num_frames']}f/{inputs['sampling_stride']} @{inputs['crop_size']}, {inputs['epochs']} ep"


def study_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells: one row per variant (its model and clip, mean ± sample std, 95 % CI,
    paired delta against the baseline with its CI and p-value, params, GFLOPs in Table 7's
    convention and GMACs in the counter's), so that rows of different recipes and cost read
    as such. Summaries written before a field existed show ``-`` for it."""
    header = ["variant", "model", "clip", "seeds", "mean", "std", "95% CI", "Δ vs baseline", "Δ 95% CI", "p (paired t)",
              "params (M)", "GFLOPs (Table 7)", "GMACs"]
    cells = []
    for v in summary["variants"]:
        d = v["delta"]
        macs_table7 = v.get("macs_table7")
        cells.append([
            v["name"], v.get("model") or "-", _clip(v), str(len(v["values"])), _num(v["mean"]), _num(v["std"]),
            _interval(v["ci95"]),
            "(baseline)" if d is None else _num(d["mean"], sign=True),
            "" if d is None else _interval(d["ci95"], sign=True),
            "" if d is None else (_p(d["p_value"]) if d["p_value"] is not None else f"n/a ({len(d['values'])} pairs)"),
            _num(None if v["params"] is None else v["params"] / 1e6, ".3f"),
            _num(None if macs_table7 is None else macs_table7 / 1e9, ".3f"),
            _num(None if v["macs"] is None else v["macs"] / 1e9, ".3f"),
        ])
    return header, cells


def write_study_tables(summary: Mapping[str, Any], md: str | os.PathLike[str], csv_path: str | os.PathLike[str]) -> str:
    """``table.md`` (the table, then what it measures, the test and the missing cells, then the
    published reference rows when the spec names them) and ``table.csv`` (measured rows only)."""
    from .compare import write_table

    protocol = summary["protocol"]
    tests = {v["delta"]["test"] for v in summary["variants"] if v["delta"] is not None and v["delta"]["p_value"] is not None}
    notes = [f"{summary['metric']} (%) of study {summary['name']!r}, mean over seeds with the sample std and the 95 % "
             f"Student-t interval; Δ: paired per-seed differences against {summary['baseline']!r} (same seed), their "
             f"mean and 95 % interval; p: {', '.join(sorted(tests)) or 'no test (fewer than 3 paired seeds)'}.",
             "protocol: " + ", ".join(f"{k}={v}" for k, v in protocol.items())]
    own = [v["name"] for v in summary["variants"] if v.get("recipe")]
    if own:
        notes.append(f"{', '.join(own)}: a recipe of their own (clip, schedule and optimiser as the clip column and "
                     f"their recipe say), paired with the baseline seed by seed on the same test videos and views; "
                     f"their Δ compares two different models at different cost, not one block.")
    notes.append("params count the classifier of the size trained; GFLOPs (Table 7): multiply-adds in the paper's "
                 "convention (convs, fc, the blocks' projections, 2 per norm element, no attention products: for "
                 "transformers it leaves out the attention matrix products); GMACs: every product (counter).")
    if summary["missing"]:
        notes.append(f"{len(summary['missing'])} cell(s) without a value: "
                     + "; ".join(f"{m['variant']}/seed{m['seed']}: {m['reason']}" for m in summary["missing"]))
    appendix = ""
    if summary.get("reference"):
        from .published import reference_markdown

        appendix = reference_markdown(summary["reference"])
    return write_table(*study_table(summary), md, csv_path, notes=notes, appendix=appendix)


def plot_study(summary: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """One row per variant: each seed a dot, the mean a tick with its 95 % CI as a bar, the
    baseline's mean as a vertical line; the paired delta written at the right. Written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = summary["variants"]
    fig, ax = plt.subplots(figsize=(8.0, 1.2 + 0.45 * len(variants)))
    base = next((v for v in variants if v["name"] == summary["baseline"]), None)
    title = f"{summary['name']}: {summary['protocol'].get('level', '')}-level, {summary['protocol'].get('epochs', '?')} epochs"
    if base is not None and base["mean"] is not None:
        ax.axvline(base["mean"], color="0.5", linestyle="--", linewidth=1)
        title += f"; dashed: baseline mean {base['mean']:.2f}"
    for row, v in enumerate(variants):
        y = len(variants) - 1 - row
        colour = "tab:gray" if v["name"] == summary["baseline"] else "tab:blue"
        if v["ci95"]:
            ax.plot(v["ci95"], [y, y], color=colour, linewidth=6, alpha=0.35, solid_capstyle="butt")
        if v["mean"] is not None:
            ax.plot([v["mean"]], [y], marker="|", markersize=16, markeredgewidth=2.5, color=colour)
        ax.scatter(v["values"], [y] * len(v["values"]), s=18, color="black", zorder=3)
        d = v["delta"]
        if d is not None and d["mean"] is not None:
            p = f", p={d['p_value']:.3f}" if d["p_value"] is not None else ""
            ax.annotate(f"Δ {d['mean']:+.2f}{p}", xy=(1.01, y), xycoords=("axes fraction", "data"), va="center",
                        fontsize=8)
    ax.set_yticks(range(len(variants)), [f"{v['name']} (n={len(v['values'])})" for v in reversed(variants)])
    ax.set_ylim(-0.7, len(variants) - 0.3)
    ax.set_xlabel(f"{summary['metric']} (%): dots = seeds, bar = 95 % CI of the mean, tick = mean")
    ax.set_title(title, fontsize=10)
    lo, hi = ax.get_xlim()  # accuracies live in [0, 100]: an interval past them is cut at the frame
    ax.set_xlim(max(lo, -2.0), min(hi, 102.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
