"""Published rows: the numbers are the paper's (checked against the figures the paper states in
its text: baseline 81.57 / 95.40 top-1 / top-5 at 10.10 GFLOPs and 47.02 M params; SNL 84.39 /
97.66 at +0.26 GFLOPs and +2.62 M), every rendered row says it is published, and an unknown set
is refused naming the valid ones."""

from __future__ import annotations

import pytest

from snl_video.engine.published import REFERENCES, reference_markdown, reference_rows, reference_table
from snl_video.errors import InvalidValueError


def test_table7_rows_carry_the_papers_figures():
    rows = {row.nonlocal_kind: row for row in reference_rows("table7")}
    base, snl = rows["-"], rows["snl"]
    assert (base.top1, base.top5, base.gflops, base.params_m) == (81.57, 95.40, 10.10, 47.02)
    assert (snl.top1, snl.top5) == (84.39, 97.66)
    assert snl.gflops == pytest.approx(base.gflops + 0.26) and snl.params_m == pytest.approx(base.params_m + 2.62)


def test_no_accuracy_is_filled_in_without_a_source():
    # rows whose accuracies were not found stay empty rather than guessed, and say so
    for row in reference_rows("table7"):
        if row.top1 is None:
            assert "not found" in row.note


def test_every_rendered_row_is_marked_published_and_sources_are_given_once():
    header, cells = reference_table("table7")
    assert "not measured" in header[0]
    assert all(cell[0].endswith("(published)") for cell in cells) and len(cells) == len(REFERENCES["table7"])
    md = reference_markdown("table7")
    assert md.count("> source:") == len({row.source for row in REFERENCES["table7"]})
    assert "-" in [cell[3] for cell in cells]  # a missing accuracy is rendered as '-'


def test_an_unknown_set_is_refused_with_the_valid_names():
    with pytest.raises(InvalidValueError, match="valid: table7"):
        reference_rows("table8")
