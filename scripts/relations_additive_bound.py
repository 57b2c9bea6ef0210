"""How far a model that never compares the two events can get on the relational task.

A model that looks at each event on its own and adds up what it sees — a per-position read-out
pooled over the clip, or any network whose receptive fields never hold both events — scores
class ``k`` as ``a_k(event 1) + b_k(event 2)`` (``a`` and ``b`` may differ: such a model can
know which event came first). This script finds the best accuracy any such additive read-out
reaches on the task's classes, exactly, with a mixed-integer program (scipy's HiGHS): maximise
the probability mass of (event 1, event 2) pairs whose true class wins by a margin, over all
real ``a`` and ``b``. Accuracies above this bound need a comparison of the two events.

    python scripts/relations_additive_bound.py                          # colour_shift: seconds
    python scripts/relations_additive_bound.py --relation shape_colour  # 256 pairs: a long search

Prints, per relation, the bound and the number of symbol pairs (colours, or shape x colour).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

Pair = tuple[int, int]


def relation_pairs(relation: str) -> tuple[list[Pair], list[int], list[float], int]:
    """The (first symbol, second symbol) pairs of ``relation``, their class and probability, and the class count.

    ``colour_shift``: symbols are the 4 colours, the first uniform, the second ``first + k`` for
    class ``k`` (classes uniform). ``shape_colour``: symbols are (shape, colour) = 16, the first
    uniform; under each class the second is the first's shape (colour) or a uniform other one."""
    if relation == "colour_shift":
        pairs = [(a, b) for a in range(4) for b in range(4)]
        return pairs, [(b - a) % 4 for a, b in pairs], [1 / 16] * 16, 4
    if relation == "shape_colour":
        pairs, labels, probs = [], [], []
        for first in range(16):
            for second in range(16):
                same_shape, same_colour = first // 4 == second // 4, first % 4 == second % 4
                label = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[same_shape, same_colour]
                p = (1 / 16) * (1 / 4) * (1 if same_shape else 1 / 3) * (1 if same_colour else 1 / 3)
                pairs.append((first, second)), labels.append(label), probs.append(p)
        return pairs, labels, probs, 4
    raise ValueError(f"unknown relation {relation!r}")


def additive_bound(pairs: list[Pair], labels: list[int], probs: list[float], num_classes: int,
                   margin: float = 1.0, scale: float = 50.0) -> tuple[float, np.ndarray, np.ndarray]:
    """The best accuracy of ``argmax_k a[first, k] + b[second, k]`` and the ``a``, ``b`` that reach it."""
    n1 = 1 + max(p[0] for p in pairs)
    n2 = 1 + max(p[1] for p in pairs)
    na, nb, n = n1 * num_classes, n2 * num_classes, len(pairs)
    big = 4 * scale + margin  # a violated pair (z = 0) relaxes its constraint by this much
    rows, lower = [], []
    for p, ((first, second), label) in enumerate(zip(pairs, labels)):
        for k in range(num_classes):
            if k == label:
                continue
            row = np.zeros(na + nb + n)
            row[first * num_classes + label] += 1
            row[na + second * num_classes + label] += 1
            row[first * num_classes + k] -= 1
            row[na + second * num_classes + k] -= 1
            row[na + nb + p] = -big
            rows.append(row)
            lower.append(margin - big)
    cost = np.concatenate([np.zeros(na + nb), -np.asarray(probs)])
    integrality = np.concatenate([np.zeros(na + nb), np.ones(n)])
    bounds = Bounds(np.concatenate([-scale * np.ones(na + nb), np.zeros(n)]),
                    np.concatenate([scale * np.ones(na + nb), np.ones(n)]))
    result = milp(cost, constraints=LinearConstraint(np.array(rows), lower, np.inf), integrality=integrality,
                  bounds=bounds)
    if not result.success:
        raise RuntimeError(f"the mixed-integer program failed: {result.message}")
    x = result.x
    return float(-result.fun / sum(probs)), x[:na].reshape(n1, num_classes), x[na:na + nb].reshape(n2, num_classes)


def accuracy(a: np.ndarray, b: np.ndarray, pairs: list[Pair], labels: list[int], probs: list[float]) -> float:
    """The probability mass of pairs whose true class has the strictly largest additive score."""
    total = 0.0
    for (first, second), label, p in zip(pairs, labels, probs):
        scores = a[first] + b[second]
        if scores[label] > np.delete(scores, label).max():
            total += p
    return total / sum(probs)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relation", choices=["colour_shift", "shape_colour", "both"], default="colour_shift")
    args = parser.parse_args(argv)
    for relation in (["colour_shift", "shape_colour"] if args.relation == "both" else [args.relation]):
        pairs, labels, probs, num_classes = relation_pairs(relation)
        bound, a, b = additive_bound(pairs, labels, probs, num_classes)
        out(f"{relation}: an additive read-out of the two events reaches at most {100 * bound:.2f} % "
            f"(checked: {100 * accuracy(a, b, pairs, labels, probs):.2f} % with the solution; chance "
            f"{100 / num_classes:.0f} %; {len(pairs)} symbol pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
