"""Published results, shown beside measured ones and marked as such.

A comparison of our runs against a paper is read honestly only when the paper's numbers
stand apart from ours: they were measured elsewhere (another code base, other hardware,
another data preparation), usually once, without an interval. So they are never mixed into
a measured table: :func:`reference_table` renders them as a table of their own, each row
with its source, which ``snl-video compare --reference table7`` and a study spec's
``reference: table7`` add below the measured table.

A number the sources at hand do not give is ``None`` (rendered ``-``), never guessed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["PublishedRow", "REFERENCES", "reference_rows", "reference_table", "reference_markdown"]

_TABLE7 = ("Zhu et al., \"Unifying Nonlocal Blocks for Neural Networks\", ICCV 2021, Table 7: UCF-101, "
           "3D ResNet-50 fine-tuned from Kinetics-400, one block in res4, 16x112x112 clips; FLOPs and params "
           "of the 400-class network (multiply-adds in the module-hook convention: profile's macs_table7)")


@dataclass(frozen=True)
class PublishedRow:
    """One published result: accuracies in percent, GFLOPs in the paper's own convention."""

    name: str
    model: str
    nonlocal_kind: str
    top1: float | None
    top5: float | None
    gflops: float | None
    params_m: float | None
    source: str
    note: str = ""


#: Sets of published rows by name (``compare --reference NAME``, a study spec's ``reference:``).
REFERENCES: dict[str, tuple[PublishedRow, ...]] = {
    "table7": (
        PublishedRow("r3d50 baseline", "r3d50", "-", 81.57, 95.40, 10.10, 47.02, _TABLE7),
        PublishedRow("r3d50 + SNL", "r3d50", "snl", 84.39, 97.66, 10.36, 49.64, _TABLE7,
                     note="+0.26 GFLOPs, +2.62 M params over the baseline"),
        PublishedRow("r3d50 + NL", "r3d50", "nl", None, None, 10.31, 49.12, _TABLE7,
                     note="+0.21 GFLOPs, +2.10 M params; its accuracies (and the NS, A2, CGNL rows) were not "
                          "found in the sources available here, so they are left out"),
    ),
}


def reference_rows(name: str) -> tuple[PublishedRow, ...]:
    """The published rows called ``name``.

    Raises:
        InvalidValueError: no such set; the message lists the valid names.
    """
    if name not in REFERENCES:
        raise InvalidValueError(f"no published rows called {name!r}; valid: {', '.join(REFERENCES)}")
    return REFERENCES[name]


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else f"{value:{fmt}}"


def reference_table(name: str) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the published rows called ``name``; every row is labelled
    ``published`` in its first column, so a copied row cannot pass for a measured one."""
    header = ["published row (not measured here)", "model", "non-local", "top-1", "top-5", "GFLOPs (paper)",
              "params (M)", "note"]
    cells = [[f"{row.name} (published)", row.model, row.nonlocal_kind, _num(row.top1, ".2f"), _num(row.top5, ".2f"),
              _num(row.gflops, ".2f"), _num(row.params_m, ".2f"), row.note or ""] for row in reference_rows(name)]
    return header, cells


def reference_markdown(name: str) -> str:
    """The published rows as a Markdown section: a heading that says they are published, the
    table, and each distinct source once."""
    from .compare import markdown_table

    sources = list(dict.fromkeys(row.source for row in reference_rows(name)))
    return "\n".join([f"Published rows `{name}` (reported by their authors, not measured by this toolkit; no "
                      f"interval, other code and data preparation):", "", markdown_table(*reference_table(name)), "",
                      *(f"> source: {s}" for s in sources)])
