"""The non-local benchmark's spectral-family rows (tiny sizes: the bookkeeping, not the timings)."""

from __future__ import annotations

import pytest

from snl_video.benchmarking import SNL_FILTER_VARIANTS, bench_nonlocal, bench_one_large


def test_filter_rows_on_both_paths_with_ratios_to_linear_snl():
    rows = bench_nonlocal(kinds=["nl"], shapes=[(1, 2, 3)], channels=8, inter_channels=4, repeats=1,
                          progress=False, snl_filters=["cayley", "arma_exact"])
    by_kind = {r["kind"]: r for r in rows}
    assert set(by_kind) == {"nl", "snl_dense", "snl_linear", "snl_cayley_dense", "snl_cayley_linear",
                            "snl_arma_exact_dense", "snl_arma_exact_linear"}
    assert by_kind["snl_linear"]["time_vs_snl_linear"] == 1.0
    cayley = by_kind["snl_cayley_linear"]
    assert cayley["time_vs_snl_linear"] == pytest.approx(cayley["time_ms"] / by_kind["snl_linear"]["time_ms"])
    assert cayley["memory_bytes"] > 0


def test_unknown_filter_variant_lists_the_valid_ones():
    with pytest.raises(ValueError, match="cayley"):
        bench_nonlocal(kinds=["nl"], shapes=[(1, 2, 3)], snl_filters=["butterworth"], progress=False)
    assert "arma_exact" in SNL_FILTER_VARIANTS


def test_one_large_run_reports_time_and_memory():
    row = bench_one_large("snl", {"filter": "cayley", "impl": "linear"}, shape=(2, 4, 4), channels=8,
                          inter_channels=4)
    assert row["N"] == 32 and row["time_s"] > 0 and row["saved_bytes"] > 0
    assert row["memory_kind"] == "peak_rss_growth"
