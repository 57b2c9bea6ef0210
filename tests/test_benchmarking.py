"""The measurement primitives (snl_video.benchmarking) and the non-local sweeps of
scripts/nonlocal_sweeps.py (tiny sizes: the bookkeeping, not the timings)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from snl_video.benchmarking import format_table

SWEEPS_PATH = Path(__file__).resolve().parents[1] / "scripts" / "nonlocal_sweeps.py"


@pytest.fixture(scope="module")
def sweeps():
    """``scripts/nonlocal_sweeps.py`` loaded as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("nonlocal_sweeps", SWEEPS_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("nonlocal_sweeps", module)
    spec.loader.exec_module(module)
    return module


def test_format_table_writes_markdown_with_specs_and_skipped_rows():
    rows = [{"kind": "nl", "time_ms": 1.23456}, {"kind": "snl", "skipped": "out of memory"}]
    table = format_table(rows, [("kind", "kind", ""), ("time_ms", "ms", ".2f")])
    assert table.splitlines() == ["| kind | ms |", "|---|---|", "| nl | 1.23 |", "| snl | out of memory |"]


def test_filter_rows_on_both_paths_with_ratios_to_linear_snl(sweeps):
    rows = sweeps.bench_nonlocal(kinds=["nl"], shapes=[(1, 2, 3)], channels=8, inter_channels=4, repeats=1,
                                 progress=False, snl_filters=["cayley", "arma_exact"])
    by_kind = {r["kind"]: r for r in rows}
    assert set(by_kind) == {"nl", "snl_dense", "snl_linear", "snl_cayley_dense", "snl_cayley_linear",
                            "snl_arma_exact_dense", "snl_arma_exact_linear"}
    assert by_kind["snl_linear"]["time_vs_snl_linear"] == 1.0
    cayley = by_kind["snl_cayley_linear"]
    assert cayley["time_vs_snl_linear"] == pytest.approx(cayley["time_ms"] / by_kind["snl_linear"]["time_ms"])
    assert cayley["memory_bytes"] > 0


def test_unknown_filter_variant_lists_the_valid_ones(sweeps):
    with pytest.raises(ValueError, match="cayley"):
        sweeps.bench_nonlocal(kinds=["nl"], shapes=[(1, 2, 3)], snl_filters=["butterworth"], progress=False)
    assert "arma_exact" in sweeps.SNL_FILTER_VARIANTS


def test_one_large_run_reports_time_and_memory(sweeps):
    row = sweeps.bench_one_large("snl", {"filter": "cayley", "impl": "linear"}, shape=(2, 4, 4), channels=8,
                                 inter_channels=4)
    assert row["N"] == 32 and row["time_s"] > 0 and row["saved_bytes"] > 0
    assert row["memory_kind"] == "peak_rss_growth"
