"""A run resumes with the number of processes that trained it: each optimizer step takes
data.batch_size x grad_accum_steps x processes clips, and a resume with another count would
change the batch mid-run while the record says nothing."""

from __future__ import annotations

import pytest
import torch

from snl_video.engine.checkpoint import load_training_checkpoint, save_checkpoint
from snl_video.engine.train import check_resume_world_size, train
from snl_video.errors import InvalidValueError

from ..helpers import tiny_config


def test_a_checkpoint_records_its_process_count_and_a_resume_with_another_is_refused(tiny_prepared, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(tiny_prepared, out, schedule={"epochs": 1}, nonlocal_blocks=None,
                      runtime={"deterministic": False})
    last = train(cfg, resume=False).last_checkpoint
    state = load_training_checkpoint(last)
    assert state["world_size"] == 1
    # as if `torchrun --nproc_per_node=2` had trained it
    save_checkpoint({**state, "world_size": 2}, last)
    longer = tiny_config(tiny_prepared, out, schedule={"epochs": 2}, nonlocal_blocks=None,
                         runtime={"deterministic": False})
    with pytest.raises(InvalidValueError, match=r"trained by 2 process\(es\), this resume runs 1.*"
                                                r"torchrun --nproc_per_node=2"):
        train(longer, resume=True)
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 1  # nothing trained on


def test_the_check_passes_the_same_count_and_old_checkpoints():
    check_resume_world_size(2, 2, checkpoint="x.pt")
    check_resume_world_size(None, 4, checkpoint="x.pt")  # stored before the count was recorded
    with pytest.raises(InvalidValueError, match="trained by 1 process.*runs 2.*snl-video train ... --resume"):
        check_resume_world_size(1, 2, checkpoint="x.pt")


def test_the_interrupt_message_under_torchrun_names_the_same_launch(tiny_prepared, tmp_path, monkeypatch):
    """Ctrl-C of a 2-process run says to resume with the same launch, not with one process
    (which the resume check above would refuse)."""
    from snl_video.commands.train import interrupted_train_message

    out = tmp_path / "run"
    cfg = tiny_config(tiny_prepared, out, schedule={"epochs": 1}, nonlocal_blocks=None,
                      runtime={"deterministic": False})
    train(cfg, resume=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    message = interrupted_train_message(cfg)
    assert "resume with the same 2-process launch: torchrun" in message and message.endswith("--resume")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert "resume with: snl-video train --config" in interrupted_train_message(cfg)
