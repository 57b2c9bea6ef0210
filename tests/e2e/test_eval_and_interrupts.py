"""eval with the wrong recipe, Ctrl-C, loader workers, CPU projections, no repeated or fake numbers."""

from __future__ import annotations

import json
import logging
import shlex

import pytest

from snl_video.cli import main
from snl_video.config import dump_config
from snl_video.engine import evaluate as evaluate_module
from snl_video.engine import preflight as preflight_module
from snl_video.engine import train as train_module
from snl_video.engine.evaluate import run_evaluation
from snl_video.engine.state_fit import CheckpointMismatchError
from snl_video.engine.train import read_history, train

from ..helpers import tiny_config


@pytest.fixture(scope="module")
def tiny_run(tiny_prepared, tmp_path_factory):
    """One finished 1-epoch run of the tiny SNL recipe."""
    out = tmp_path_factory.mktemp("i15_run") / "run"
    cfg = tiny_config(tiny_prepared, out, schedule={"epochs": 1}, runtime={"tensorboard": False})
    result = train(cfg)
    return cfg, result


# ---------------------------------------------------------------- item 3


def test_eval_with_the_baseline_recipe_on_an_snl_checkpoint_is_one_line(tiny_prepared, tiny_run, tmp_path):
    cfg, result = tiny_run
    baseline = tiny_config(tiny_prepared, tmp_path / "b", nonlocal_blocks=None)
    with pytest.raises(CheckpointMismatchError) as info:
        run_evaluation(baseline, result.last_checkpoint)
    text = str(info.value)
    assert "\n" not in text and len(text) < 800
    assert "not in the model (nonlocal_blocks.layer3_after_0." in text
    # what the checkpoint was made with (its run's config.yaml), and the config to use
    assert "recipe 'tiny' (model r3d10, snl blocks, 4 classes" in text
    assert f"--config {result.output_dir.resolve() / 'config.yaml'}" in text


def test_eval_with_another_head_size_names_the_shapes(tiny_prepared, tiny_run, tmp_path):
    cfg, result = tiny_run
    # a 6-class head on the 4-class dataset is an error of its own unless asked for
    wider = tiny_config(tiny_prepared, tmp_path / "w", model={"num_classes": 6, "allow_extra_classes": True})
    with pytest.raises(CheckpointMismatchError, match=r"fc.weight: checkpoint \[4, 128\] vs model \[6, 128\]"):
        run_evaluation(wider, result.last_checkpoint)


def test_cli_eval_mismatch_is_one_line_exit_2(tiny_prepared, tiny_run, tmp_path, capsys):
    cfg, result = tiny_run
    recipe = tmp_path / "baseline.yaml"
    recipe.write_text(dump_config(tiny_config(tiny_prepared, tmp_path / "b", nonlocal_blocks=None)))
    assert main(["eval", "--config", str(recipe), "--checkpoint", str(result.last_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "size mismatch" not in err


# ---------------------------------------------------------------- item 6


def test_ctrl_c_during_train_says_what_was_kept_and_how_to_resume(tiny_prepared, tmp_path, capsys, monkeypatch):
    run = tmp_path / "my run"  # a folder with a space: the printed command must still paste as one
    cfg = tiny_config(tiny_prepared, run, schedule={"epochs": 3}, runtime={"tensorboard": False})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(dump_config(cfg))
    real = train_module.train_one_epoch

    def second_epoch_interrupted(*args, epoch, **kw):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(*args, epoch=epoch, **kw)

    monkeypatch.setattr(train_module, "train_one_epoch", second_epoch_interrupted)
    assert main(["train", "--config", str(recipe)]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    last = run / "checkpoints" / "last.pt"
    assert f"kept {last} (after epoch 1 of 3)" in err
    command = shlex.split(err.split("resume with: ")[1])
    assert command == ["snl-video", "train", "--config", str(run / "config.yaml"), "--resume"]
    # and that command does resume
    monkeypatch.setattr(train_module, "train_one_epoch", real)
    assert main([*command[1:], "--no-eval"]) == 0


def test_ctrl_c_during_eval_and_prepare_is_one_line_exit_130(tiny_prepared, tiny_run, tmp_path, capsys, monkeypatch):
    cfg, result = tiny_run

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_module, "evaluate_model", interrupted)
    args = ["eval", "--config", str(result.output_dir / "config.yaml"), "--checkpoint", str(result.last_checkpoint)]
    assert main(args) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing was written" in err and "snl-video eval --config" in err

    from snl_video.data import prepare as prepare_module

    calls = []

    def one_then_interrupt(*a, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real_prepare_one(*a, **kw)

    real_prepare_one = prepare_module.prepare_one
    monkeypatch.setattr(prepare_module, "prepare_one", one_then_interrupt)
    raw = tiny_prepared.parent / "raw"
    out = tmp_path / "prep"
    args = ["prepare", "ucf101", "--videos", str(raw / "UCF-101"), "--splits", str(raw / "ucfTrainTestlist"),
            "--out", str(out), "--split", "1", "--no-progress", "--short-side", "32"]
    assert main(args) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"kept 1 prepared videos in {out}" in err and f"--out {out}" in err


def test_loader_workers_are_lowered_to_the_cpus_with_one_info_line(monkeypatch, caplog):
    # the line is said once per (requested, CPUs) pair and process: a pair no other test asks for
    monkeypatch.setattr(preflight_module.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    with caplog.at_level(logging.INFO, logger="snl_video.engine.preflight"):
        assert [preflight_module.usable_workers(n) for n in (0, 3, 11, 11, 11)] == [0, 3, 3, 3, 3]
    lines = [r.getMessage() for r in caplog.records if "num_workers" in r.getMessage()]
    assert lines == ["data.num_workers=11 but 3 CPU(s) are available: using 3 loader workers"]


def test_a_slow_cpu_eval_says_so_with_the_override(tiny_run, monkeypatch, caplog):
    cfg, result = tiny_run
    monkeypatch.setattr(preflight_module, "SLOW_CPU_EVAL_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING, logger="snl_video.engine.preflight"):
        run_evaluation(cfg, result.last_checkpoint, out_dir=result.output_dir / "eval_slow")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("evaluating on the CPU: about" in w and "eval.num_clips=1 eval.num_crops=1" in w for w in warnings)


def test_final_eval_reuses_the_last_epochs_clip_pass_and_quick_eval_logs_no_video_top1(
        tiny_prepared, tmp_path, monkeypatch, caplog):
    cfg = tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 1}, eval={"every_epochs": 1},
                      runtime={"tensorboard": False})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(dump_config(cfg))
    passes = []
    real = evaluate_module.collect_logits

    def counting(*args, desc="eval", **kw):
        passes.append(desc)
        return real(*args, desc=desc, **kw)

    monkeypatch.setattr(evaluate_module, "collect_logits", counting)
    with caplog.at_level(logging.INFO):
        assert main(["train", "--config", str(recipe)]) == 0
    assert passes == ["eval clips", "eval videos"]  # old: the clip pass twice
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    epoch = [h for h in read_history(tmp_path / "run") if h["kind"] == "epoch"][-1]
    assert metrics["clip_top1"] == pytest.approx(epoch["val_clip_top1"], abs=1e-4)
    metric_lines = [r.getMessage() for r in caplog.records
                    if r.name == "snl_video.engine.reports" and r.getMessage().startswith("clip top-1")]
    assert len(metric_lines) == 2
    assert "video top-1" not in metric_lines[0] and "one per video" in metric_lines[0]  # the quick evaluation
    assert "video top-1" in metric_lines[1]  # the final one
