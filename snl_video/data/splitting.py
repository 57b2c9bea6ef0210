"""Group-aware, per-class, reproducible subsets: the one place that draws held-out videos.

Clips cut from one source video look alike; a validation or test set that shares a
source with the training set measures memory, not recognition. So videos are drawn by
*group* (UCF-101's ``gXX``, HMDB-51's source-video prefix, a ``--group-regex`` of a
folder), per class: a (class, group) pair is always on one side. The draw depends only
on the seed and the listed videos (not on file-system order), so the same inputs give
the same subsets on every machine.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["draw_groups", "TooFewVideosError"]


class TooFewVideosError(InvalidValueError):
    """A class has too few videos (or groups) to give every requested subset at least one."""


def _stable_seed(seed: int, class_name: str) -> int:
    digest = hashlib.sha256(f"{seed}\0{class_name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def draw_groups(
    table: pd.DataFrame,
    fractions: Sequence[tuple[str, float]],
    *,
    seed: int,
    rest: str = "train",
    where: str = "",
) -> pd.Series:
    """The subset of every row of ``table`` (columns ``class_name``, ``group``, ``path``).

    For each class, its groups are shuffled (seeded by ``seed`` and the class name) and
    dealt to the subsets of ``fractions`` in order, each taking whole groups until it holds
    at least ``fraction`` of the class's videos (and at least one group when the fraction is
    > 0); what is left is ``rest``. A class that cannot give each subset one group and keep
    one for ``rest`` is a :class:`TooFewVideosError` naming it.
    """
    out = pd.Series(rest, index=table.index, dtype=object)
    wanted = [(name, frac) for name, frac in fractions if frac > 0]
    if not wanted:
        return out
    problems: list[str] = []
    for class_name, rows in table.groupby("class_name", sort=True):
        groups = sorted(rows["group"].astype(str).unique())
        if len(groups) < len(wanted) + 1:
            problems.append(f"class {class_name!r} has {len(rows)} videos in {len(groups)} group(s); "
                            f"{', '.join(n for n, _ in wanted)} and {rest} need at least {len(wanted) + 1}")
            continue
        rng = np.random.default_rng(_stable_seed(seed, str(class_name)))
        order = [groups[i] for i in rng.permutation(len(groups))]
        sizes = rows.groupby(rows["group"].astype(str)).size().to_dict()
        total = len(rows)
        position = 0
        assigned: dict[str, str] = {}
        for k, (name, frac) in enumerate(wanted):
            taken = 0
            # keep at least one group for each later subset and for `rest`
            reserve = len(wanted) - k
            while position < len(order) - reserve and (taken == 0 or taken < frac * total):
                assigned[order[position]] = name
                taken += sizes[order[position]]
                position += 1
        out.loc[rows.index] = rows["group"].astype(str).map(lambda g: assigned.get(g, rest)).to_numpy()
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise TooFewVideosError(f"{where}too few videos to draw the subsets:\n  {shown}{more}\n"
                                "add videos, lower the fractions, or loosen --group-regex")
    return out
