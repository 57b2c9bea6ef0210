"""Lengthening (or shortening) ``schedule.epochs`` on ``--resume`` continues the schedule by a
documented rule: a fresh run's schedule over the new length, from the resume point
(:func:`snl_video.engine.optim.restore_scheduler`)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snl_video.engine.metric_log import read_history
from snl_video.engine.optim import EpochSchedule, build_scheduler, restore_scheduler
from snl_video.engine.train import train

from ..helpers import tiny_config

LR = 0.02

#: Every schedule kind with a config that changes lr within 4 epochs (plateau: see below).
KINDS = {
    "cosine": {"kind": "cosine"},
    "cosine+warmup": {"kind": "cosine", "warmup_epochs": 1, "warmup_start_factor": 0.25},
    "step": {"kind": "step", "step_size": 1, "gamma": 0.5},
    "multistep+warmup": {"kind": "multistep", "milestones": [1], "gamma": 0.5, "warmup_epochs": 1},
}


def _cfg(tmp_path, schedule: dict, epochs: int):
    every = 1 if schedule["kind"] == "plateau" else 0  # plateau needs evaluations
    return tiny_config(tmp_path, tmp_path / "run", schedule={**schedule, "epochs": epochs}, optim={"lr": LR},
                       eval={"every_epochs": every})


def _fresh_lrs(cfg) -> list[float]:
    """The documented formula: the lr of each epoch of a fresh run of ``cfg``."""
    schedule = EpochSchedule(cfg)
    return [LR * schedule(e) for e in range(cfg.schedule.epochs)]


def _epoch_lrs(out) -> list[float]:
    return [r["lr"] for r in read_history(out) if r.get("kind") == "epoch"]


def _step_lrs_by_epoch(out) -> dict[int, list[float]]:
    found: dict[int, list[float]] = {}
    for r in read_history(out):
        if r.get("kind") == "step":
            found.setdefault(int(r["epoch"]), []).append(r["lr"])
    return found


def test_cosine_2_to_4_epochs_on_resume_never_trains_at_lr_0(tiny_prepared, tmp_path):
    """The trial's case: before, epochs 3 and 4 trained at lr 0 and 0.005."""
    cfg = tiny_config(tiny_prepared, tmp_path / "run", schedule={"kind": "cosine", "epochs": 2}, optim={"lr": LR})
    train(cfg)
    longer = tiny_config(tiny_prepared, tmp_path / "run", schedule={"kind": "cosine", "epochs": 4}, optim={"lr": LR})
    result = train(longer, resume=True)
    assert result.epochs_done == 4
    lrs = _epoch_lrs(tmp_path / "run")
    assert len(lrs) == 4 and all(lr > 0 for lr in lrs), lrs
    # epochs 1-2 as the 2-epoch run had them; 3-4 as a fresh 4-epoch run has them there
    expected = _fresh_lrs(cfg) + _fresh_lrs(longer)[2:]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert expected[2:] == pytest.approx([LR * 0.5, LR * 0.5 * (1 + math.cos(math.pi * 3 / 4))])
    # every optimizer step of an epoch ran at that epoch's lr
    steps = _step_lrs_by_epoch(tmp_path / "run")
    assert set(steps) == {1, 2, 3, 4}
    for epoch, seen in steps.items():
        assert seen == pytest.approx([expected[epoch - 1]] * len(seen), rel=1e-12), (epoch, seen)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_follows_the_new_length_from_the_resume_point(name, tmp_path):
    """For each kind, lengthening 2 -> 4 and shortening 4 -> 3 after 2 epochs give, for every
    remaining epoch, a fresh run's lr of the new length at that epoch (and no 0 before the end)."""
    schedule = KINDS[name]
    for before, after in [(2, 4), (4, 3), (2, 2)]:
        old = _cfg(tmp_path, schedule, before)
        model = nn.Linear(2, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        scheduler = build_scheduler(optimizer, old)
        for _ in range(2):  # two epochs done, as train() steps after each
            optimizer.step()
            scheduler.step()
        saved_optimizer, saved_scheduler = optimizer.state_dict(), scheduler.state_dict()

        new = _cfg(tmp_path, schedule, after)
        model = nn.Linear(2, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        scheduler = build_scheduler(optimizer, new)
        optimizer.load_state_dict(saved_optimizer)
        restore_scheduler(scheduler, saved_scheduler, new)
        seen = []
        for _ in range(2, after):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert seen == pytest.approx(_fresh_lrs(new)[2:], rel=1e-12), (before, after)
        assert all(lr > 0 for lr in seen), (before, after, seen)


def test_plateau_keeps_its_reduction_through_a_longer_resume(tmp_path):
    schedule = {"kind": "plateau", "patience": 0, "factor": 0.5}
    old = _cfg(tmp_path, schedule, 2)
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=LR)
    scheduler = build_scheduler(optimizer, old)
    for metric in (0.5, 0.4):  # no improvement at the second evaluation: lr x 0.5
        optimizer.step()
        scheduler.lr_lambdas[0].observe(metric, epochs_done=scheduler.last_epoch + 1)
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(LR * 0.5)
    saved = scheduler.state_dict()

    new = _cfg(tmp_path, schedule, 4)
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=LR)
    scheduler = build_scheduler(optimizer, new)
    restore_scheduler(scheduler, saved, new)
    restored = scheduler.lr_lambdas[0]
    assert (restored.epochs, restored.plateau_scale, restored.best, restored.reductions) == (4, 0.5, 0.5, 1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(LR * 0.5)


def test_an_unchanged_length_restores_exactly(tmp_path):
    cfg = _cfg(tmp_path, KINDS["cosine+warmup"], 4)
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=LR)
    scheduler = build_scheduler(optimizer, cfg)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    saved, lr = scheduler.state_dict(), optimizer.param_groups[0]["lr"]
    optimizer2 = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=LR)
    scheduler2 = build_scheduler(optimizer2, cfg)
    restore_scheduler(scheduler2, saved, cfg)
    assert optimizer2.param_groups[0]["lr"] == lr
    assert vars(scheduler2.lr_lambdas[0]) == vars(scheduler.lr_lambdas[0])
