"""Every output follows the user's umask, atomic writes included."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from snl_video.cli import main
from snl_video.engine.evaluate import run_evaluation
from snl_video.engine.train import train
from snl_video.fileio import atomic_torch_save, atomic_write_text, current_umask

from ..helpers import tiny_config


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writers_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    a = atomic_write_text(tmp_path / "a.txt", "x")
    b = atomic_torch_save({"x": 1}, tmp_path / "b.pt")
    with open(tmp_path / "plain.txt", "w") as f:  # what an ordinary open() gives: the reference
        f.write("x")
    assert stat.S_IMODE(a.stat().st_mode) == stat.S_IMODE(b.stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected


def test_a_run_eval_and_compare_write_every_file_with_the_umask_mode(tiny_prepared, tmp_path, umask):
    umask(0o022)
    cfg = tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 1}, runtime={"tensorboard": False})
    result = train(cfg)
    run_evaluation(cfg, result.last_checkpoint)
    assert main(["compare", str(tmp_path / "run"), "--out", str(tmp_path / "cmp"), "--no-profile"]) == 0
    modes = {**_modes(tmp_path / "run"), **{f"compare/{k}": v for k, v in _modes(tmp_path / "cmp").items()}}
    for name in ("config.yaml", "checkpoints/last.pt", "eval/metrics.json", "eval/confusion_matrix.png",
                 "compare/table.md", "compare/table.csv", "metrics.jsonl"):
        assert name in modes, sorted(modes)
    wrong = {k: oct(v) for k, v in modes.items() if v != 0o644}
    assert not wrong, wrong
