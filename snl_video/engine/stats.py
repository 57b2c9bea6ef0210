"""Statistics of a study: per-variant summaries over seeds and paired differences against a baseline.

A study trains every variant with the same seeds, so seed ``k`` of a variant and seed ``k``
of the baseline share their data order, augmentations and (where shapes agree) initial
weights: their difference removes the seed-to-seed variation they share. The comparison is
therefore **paired**: the per-seed differences, their mean, a 95 % Student-t confidence
interval of that mean, and the two-sided **paired t-test** (a one-sample t-test of the
differences against 0, ``scipy.stats.ttest_rel``). With fewer than
:data:`MIN_PAIRED_SEEDS` paired seeds no p-value is given, and the summary says so.

The t quantiles and the t distribution come from ``scipy.stats``; nothing here writes its own
special functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["MIN_PAIRED_SEEDS", "PAIRED_TEST", "Summary", "PairedDelta", "summarise", "paired_delta", "t_interval"]

#: Fewer paired seeds than this: the delta gets no p-value (a t-test on 2 points has 1 degree of freedom).
MIN_PAIRED_SEEDS = 3
#: The name of the test, as written into ``summary.json``.
PAIRED_TEST = "paired t-test (two-sided, scipy.stats.ttest_rel)"


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean of ``values`` (``None`` with fewer than 2 values):
    ``mean ± t_{(1+confidence)/2, n-1} · s / √n`` with ``s`` the sample standard deviation."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    mean = float(x.mean())
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, df=x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return (mean - half, mean + half)


@dataclass(frozen=True)
class Summary:
    """One variant over its seeds: mean, sample standard deviation (``None`` with one value) and 95 % CI."""

    values: tuple[float, ...]
    mean: float | None
    std: float | None
    ci95: tuple[float, float] | None


def summarise(values: Sequence[float]) -> Summary:
    """Mean, sample std (ddof=1) and the 95 % Student-t interval of ``values`` (all ``None`` when empty)."""
    x = np.asarray(values, dtype=np.float64)
    return Summary(values=tuple(float(v) for v in x), mean=float(x.mean()) if x.size else None,
                   std=float(x.std(ddof=1)) if x.size > 1 else None, ci95=t_interval(x))


@dataclass(frozen=True)
class PairedDelta:
    """A variant minus the baseline, seed by seed (only seeds both have).

    ``p_value`` is ``None`` with fewer than :data:`MIN_PAIRED_SEEDS` pairs, and ``test`` then
    says so instead of naming the test.
    """

    seeds: tuple[int, ...]
    values: tuple[float, ...]
    mean: float | None
    ci95: tuple[float, float] | None
    p_value: float | None
    test: str


def paired_delta(variant: dict[int, float], baseline: dict[int, float]) -> PairedDelta:
    """Paired differences ``variant[seed] - baseline[seed]`` over the seeds both have, in seed order,
    with their mean, 95 % CI and the paired t-test's two-sided p-value."""
    seeds = tuple(sorted(set(variant) & set(baseline)))
    d = np.array([variant[s] - baseline[s] for s in seeds], dtype=np.float64)
    mean = float(d.mean()) if d.size else None
    if d.size < MIN_PAIRED_SEEDS:
        test = f"no test: {d.size} paired seed(s), a paired t-test needs at least {MIN_PAIRED_SEEDS}"
        return PairedDelta(seeds, tuple(map(float, d)), mean, t_interval(d), None, test)
    if np.all(d == d[0]):
        # zero spread: the t statistic is undefined (scipy returns nan); say what is known
        p = 1.0 if d[0] == 0 else 0.0
        assert mean is not None  # d is not empty here: d.size >= MIN_PAIRED_SEEDS
        return PairedDelta(seeds, tuple(map(float, d)), mean, (mean, mean), p,
                           PAIRED_TEST + "; every difference is equal, so the p-value is exact (0 or 1)")
    from scipy import stats

    p = float(stats.ttest_rel([variant[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    return PairedDelta(seeds, tuple(map(float, d)), mean, t_interval(d), p, PAIRED_TEST)
