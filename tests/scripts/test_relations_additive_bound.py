"""scripts/relations_additive_bound.py: the best additive read-out of the colour_shift relation is 75 %.

Checked without the script's mixed-integer program: an explicit additive read-out gets 12 of
the 16 (first colour, second colour) pairs right, and for every choice of 13 pairs a linear
program proves that no additive read-out gets all 13 right.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linprog

from ..helpers import load_script

PAIRS = [(c1, c2) for c1 in range(4) for c2 in range(4)]
LABEL = {(c1, c2): (c2 - c1) % 4 for c1, c2 in PAIRS}  # colour_shift: the step along the cycle

# a[c1, k] + b[c2, k] scores class k (found once with the script, checked here by counting)
A = np.array([[-20, -19, -17, -20], [-19, -20, -20, -20], [-15, -18, -20, -14], [-11, -16, -20, -8]], float)
B = np.array([[-20, -11, -8, -20], [-17, -17, -20, -17], [-18, -16, -17, -20], [-16, -12, -11, -20]], float)


def _right(a: np.ndarray, b: np.ndarray, pair: tuple[int, int]) -> bool:
    scores = a[pair[0]] + b[pair[1]]
    return int(np.argmax(scores)) == LABEL[pair] and np.sort(scores)[-2] < scores[LABEL[pair]]


def _all_right_is_feasible(chosen: tuple[tuple[int, int], ...]) -> bool:
    """Is there an additive read-out with margin 1 on every chosen pair? (a linear feasibility problem)"""
    rows = []
    for c1, c2 in chosen:
        t = LABEL[c1, c2]
        for k in range(4):
            if k != t:
                row = np.zeros(32)
                row[c1 * 4 + t] -= 1
                row[16 + c2 * 4 + t] -= 1
                row[c1 * 4 + k] += 1
                row[16 + c2 * 4 + k] += 1
                rows.append(row)  # score_k - score_t <= -1
    result = linprog(np.zeros(32), A_ub=np.array(rows), b_ub=-np.ones(len(rows)), bounds=(None, None), method="highs")
    return result.status == 0


def test_an_additive_read_out_gets_three_quarters_of_the_pairs_right():
    assert sum(_right(A, B, pair) for pair in PAIRS) == 12


def test_no_additive_read_out_gets_thirteen_pairs_right():
    assert _all_right_is_feasible(tuple(p for p in PAIRS if _right(A, B, p)))  # the LP sees the 12 it should
    assert not any(_all_right_is_feasible(chosen) for chosen in itertools.combinations(PAIRS, 13))


def test_the_script_finds_the_same_bound_and_a_read_out_that_reaches_it():
    script = load_script("relations_additive_bound")
    pairs, labels, probs, num_classes = script.relation_pairs("colour_shift")
    assert [LABEL[p] for p in pairs] == labels and np.isclose(sum(probs), 1)
    bound, a, b = script.additive_bound(pairs, labels, probs, num_classes)
    assert np.isclose(bound, 0.75)
    assert sum(_right(a, b, pair) for pair in PAIRS) == 12
