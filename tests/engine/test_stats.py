"""The study's statistics against independent computations: printed t-table quantiles and sums by hand."""

from __future__ import annotations

import math

import pytest

from snl_video.engine.stats import MIN_PAIRED_SEEDS, PAIRED_TEST, paired_delta, summarise, t_interval

# two-sided 95 % Student-t quantiles t_{0.975, df}, as printed in any t table
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045}


@pytest.mark.parametrize("df", sorted(T_TABLE))
def test_the_interval_uses_the_t_table_quantile(df):
    values = [float(i % 3) + 0.5 * i for i in range(df + 1)]
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    lo, hi = t_interval(values)
    assert (hi - lo) / 2 == pytest.approx(T_TABLE[df] * s / math.sqrt(n), rel=2e-4)  # the table has 4 digits
    assert (lo + hi) / 2 == pytest.approx(mean)


def test_summary_mean_and_sample_std_by_hand():
    s = summarise([50.0, 52.0, 57.0])
    assert s.mean == pytest.approx(53.0)
    assert s.std == pytest.approx(math.sqrt((9 + 1 + 16) / 2))
    assert s.ci95 == pytest.approx((53.0 - 4.303 * s.std / math.sqrt(3), 53.0 + 4.303 * s.std / math.sqrt(3)), rel=1e-4)
    one = summarise([61.0])
    assert one.mean == 61.0 and one.std is None and one.ci95 is None
    assert summarise([]).mean is None


def test_paired_differences_by_hand_and_the_p_value_from_the_t_table():
    base = {0: 50.0, 1: 60.0, 2: 55.0, 3: 40.0, 4: 45.0}
    diffs = [1.0, 2.0, 3.0, 4.0, 5.0]
    variant = {seed: base[seed] + d for seed, d in zip(sorted(base), diffs)}
    variant[7] = 99.0  # a seed the baseline lacks is not paired
    delta = paired_delta(variant, base)
    assert delta.seeds == (0, 1, 2, 3, 4) and delta.values == pytest.approx(diffs)
    assert delta.mean == pytest.approx(3.0)
    sd = math.sqrt(sum((d - 3.0) ** 2 for d in diffs) / 4)  # sqrt(2.5)
    lo, hi = delta.ci95
    assert (lo + hi) / 2 == pytest.approx(3.0) and (hi - lo) / 2 == pytest.approx(2.776 * sd / math.sqrt(5), rel=2e-4)
    assert delta.test == PAIRED_TEST
    # t = 3 / (sqrt(2.5)/sqrt(5)) = 4.243 with 4 df lies between the table's 3.747 (p=0.02) and 4.604 (p=0.01)
    assert 0.01 < delta.p_value < 0.02
    # differences whose t statistic is exactly the 95 % quantile have p = 0.05
    t975 = 2.7764451051977987  # t_{0.975, 4} to 16 digits (a t table gives 2.776)
    base2 = {s: 0.0 for s in range(5)}
    e = [-2.0, -1.0, 0.0, 1.0, 2.0]  # mean 0, sample sd sqrt(2.5)
    shift = t975 * math.sqrt(2.5) / math.sqrt(5)
    d2 = paired_delta({s: e[s] + shift for s in range(5)}, base2)
    assert d2.p_value == pytest.approx(0.05, rel=1e-6)
    assert d2.ci95[0] == pytest.approx(0.0, abs=1e-9)  # the interval just touches 0


def test_too_few_paired_seeds_say_so_instead_of_a_p_value():
    delta = paired_delta({0: 51.0, 1: 53.0}, {0: 50.0, 1: 50.0, 2: 49.0})
    assert delta.values == (1.0, 3.0) and delta.mean == 2.0 and delta.p_value is None
    assert str(MIN_PAIRED_SEEDS) in delta.test and "no test" in delta.test
    lo, hi = delta.ci95  # sd of (1, 3) is sqrt(2), n = 2: half-width 12.706 * sqrt(2) / sqrt(2)
    assert (lo + hi) / 2 == pytest.approx(2.0) and (hi - lo) / 2 == pytest.approx(12.706, rel=1e-4)


def test_identical_differences_have_an_exact_p_value():
    same = paired_delta({0: 50.0, 1: 50.0, 2: 50.0}, {0: 50.0, 1: 50.0, 2: 50.0})
    assert same.mean == 0.0 and same.p_value == 1.0
    shifted = paired_delta({0: 52.0, 1: 52.0, 2: 52.0}, {0: 50.0, 1: 50.0, 2: 50.0})
    assert shifted.p_value == 0.0 and shifted.ci95 == (2.0, 2.0)
