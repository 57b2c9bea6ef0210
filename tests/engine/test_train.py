"""The training engine: a tiny run learns, resume is exact, NaN stops cleanly, schedules, freezing, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from snl_video.config import config_from_dict
from snl_video.engine import train as train_module
from snl_video.engine.checkpoint import LAST, load_checkpoint, save_checkpoint
from snl_video.engine.evaluate import run_evaluation
from snl_video.engine.metric_log import read_history
from snl_video.engine.optim import build_optimizer, build_scheduler
from snl_video.errors import InvalidValueError
from snl_video.engine.train import NonFiniteLossError, freeze_until, train
from snl_video.models import build_model

from ..helpers import NUM_CLASSES, tiny_config


def test_tiny_run_learns_and_evaluates(tiny_prepared, tmp_path):
    # 4 motion classes: the loss must fall and the held-out clip accuracy must beat chance (25%).
    cfg = tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 20, "kind": "cosine"}, optim={"lr": 0.05})
    result = train(cfg)
    epochs = [h for h in read_history(tmp_path / "run") if h["kind"] == "epoch"]
    assert len(epochs) == 20 and result.epochs_done == 20
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.3
    assert min(h["train_top1"] for h in epochs[-3:]) > 50.0
    report = run_evaluation(cfg, result.last_checkpoint)
    # 44 training videos: it overfits, but the held-out clips must still beat chance (deterministic run)
    assert report.clip_top1 > 100.0 / NUM_CLASSES
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    for key in ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy", "num_classes"):
        assert key in metrics
    assert metrics["num_classes"] == NUM_CLASSES and metrics["num_videos"] == report.num_clips
    for name in ("predictions.csv", "per_class_accuracy.csv", "confusion_matrix.csv", "confusion_matrix.png"):
        assert (tmp_path / "run" / "eval" / name).is_file()
    # the run records its resolved config, and every metric in JSONL and CSV
    assert config_from_dict(__import__("yaml").safe_load((tmp_path / "run" / "config.yaml").read_text())) == cfg
    csv_text = (tmp_path / "run" / "metrics.csv").read_text()
    assert "train_loss" in csv_text and "clips_per_s" in csv_text


# The fine-tuning knobs keep resume exact: parameter groups, clipping, label smoothing and
# batch Mixup/CutMix (drawn from the per-epoch seeded global generator), the multistep and
# plateau schedules (the plateau's best metric and count travel in the scheduler's state dict).
RESUME_RECIPES = {
    "step": dict(schedule={"epochs": 3, "kind": "step", "step_size": 1, "gamma": 0.5}),
    "multistep_warmup_groups_clip_mix": dict(
        schedule={"epochs": 3, "kind": "multistep", "milestones": [2], "gamma": 0.5, "warmup_epochs": 1},
        optim={"lr": 0.02, "lr_mult": {"fc.*": 5.0, "nonlocal_blocks.*": 2.0}, "no_weight_decay_on": ["norm", "bias"],
               "clip_grad_norm": 1.0, "label_smoothing": 0.1},
        data={"mixup_alpha": 0.4, "cutmix_alpha": 1.0}),
    "plateau": dict(
        schedule={"epochs": 3, "kind": "plateau", "patience": 0, "factor": 0.5},
        eval={"every_epochs": 1}),
}


@pytest.mark.parametrize("recipe", list(RESUME_RECIPES))
def test_kill_and_resume_gives_the_same_weights(tiny_prepared, tmp_path, recipe):
    sections = RESUME_RECIPES[recipe]
    full = train(tiny_config(tiny_prepared, tmp_path / "full", **sections))
    cfg = tiny_config(tiny_prepared, tmp_path / "cut", **sections)
    first = train(cfg, stop_after_epochs=1)  # "killed" after the checkpoint of epoch 1
    assert first.epochs_done == 1 and load_checkpoint(first.last_checkpoint)["epoch"] == 1
    if recipe == "plateau":  # the plateau's state crosses the cut
        assert load_checkpoint(first.last_checkpoint)["scheduler"]["lr_lambdas"][0]["best"] >= 0
    with pytest.raises(ValueError, match="--resume"):
        train(cfg)  # no silent overwrite of an existing run
    resumed = train(cfg, resume=True)
    assert resumed.epochs_done == 3
    a, b = load_checkpoint(full.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["scheduler"] == b["scheduler"]
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    # the logged losses of the resumed epochs equal the uninterrupted run's
    loss = lambda d: [h["train_loss"] for h in read_history(d) if h["kind"] == "epoch"]  # noqa: E731
    assert loss(tmp_path / "full") == loss(tmp_path / "cut")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_prepared, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_prepared, tmp_path / "run")
    train(cfg, stop_after_epochs=1)
    good = load_checkpoint(tmp_path / "run" / "checkpoints" / LAST)

    class NanLoss(torch.nn.CrossEntropyLoss):
        def forward(self, input, target):  # noqa: A002
            return super().forward(input, target) * float("nan")

    monkeypatch.setattr(train_module.nn, "CrossEntropyLoss", NanLoss)
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 2, step 1"):
        train(cfg, resume=True)
    kept = load_checkpoint(tmp_path / "run" / "checkpoints" / LAST)
    assert kept["epoch"] == 1
    assert all(torch.equal(v, good["model"][k]) for k, v in kept["model"].items())
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


def _sched_cfg(**schedule):
    return config_from_dict({"schedule": schedule, "runtime": {"device": "cpu"}})


def _lrs(cfg, epochs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim.lr)
    sched = build_scheduler(opt, cfg)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_default_schedule_is_the_papers():
    cfg = _sched_cfg()
    assert (cfg.optim.name, cfg.optim.momentum, cfg.optim.weight_decay) == ("sgd", 0.9, 1e-4)
    lrs = _lrs(cfg, 100)
    assert lrs[0] == pytest.approx(0.01) and lrs[39] == pytest.approx(0.01)
    assert lrs[40] == pytest.approx(0.001) and lrs[80] == pytest.approx(0.0001)


def test_warmup_then_cosine():
    lrs = _lrs(_sched_cfg(epochs=10, kind="cosine", warmup_epochs=2, warmup_start_factor=0.1, min_lr=0.0), 10)
    assert lrs[0] == pytest.approx(0.001) and lrs[1] == pytest.approx(0.0055)
    assert lrs[2] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))


def test_freeze_until_keeps_nonlocal_blocks_trainable():
    model = build_model("r3d10", num_classes=4, nonlocal_blocks="snl", widen_factor=0.25)
    frozen = freeze_until(model, "layer4")
    assert frozen == ["conv1", "bn1", "layer1", "layer2", "layer3"]
    assert not any(p.requires_grad for p in model.layer3.parameters())
    assert all(p.requires_grad for p in model.layer4.parameters())
    assert all(p.requires_grad for p in model.nonlocal_blocks.parameters())
    cfg = config_from_dict({"runtime": {"device": "cpu"}})
    trainable = {id(p) for g in build_optimizer(model, cfg).param_groups for p in g["params"]}
    assert trainable == {id(p) for p in model.parameters() if p.requires_grad}


def test_freeze_until_freezes_both_slowfast_pathways_and_their_laterals():
    # on the CPU: a block checks that it starts as the identity, which reads its tensors
    model = build_model("slowfast_r50", num_classes=4, nonlocal_blocks={"kind": "nl", "positions": {"slow.layer2": [1]}})
    frozen = freeze_until(model, "layer3")
    assert frozen == ["slow.conv1", "slow.bn1", "fast.conv1", "fast.bn1", "laterals.stem",
                      "slow.layer1", "fast.layer1", "laterals.layer1", "slow.layer2", "fast.layer2", "laterals.layer2"]
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad}
    assert not trainable & {"slow.layer1", "slow.layer2", "fast.layer2", "laterals.layer2", "laterals.stem"}
    assert {"slow.layer3", "fast.layer3", "laterals.layer3", "fc.weight"} <= trainable
    assert all(p.requires_grad for p in model.nonlocal_blocks.parameters())


def test_freeze_until_on_x3d_and_a_clear_refusal_for_torchvisions_transformers():
    with torch.device("meta"):
        x3d = build_model("x3d_xs", num_classes=4)
        mvit = build_model("mvit_v2_s", num_classes=4)
    assert freeze_until(x3d, "layer2") == ["conv1", "bn1", "layer1"]
    assert not any(p.requires_grad for p in x3d.conv1.parameters()) and all(p.requires_grad for p in x3d.layer2.parameters())
    with pytest.raises(InvalidValueError, match=r"mvit_v2_s has none: leave runtime.freeze_until null"):
        freeze_until(mvit, "layer1")
    assert freeze_until(mvit, None) == []


def test_checkpoint_write_is_atomic_and_rejects_foreign_files(tmp_path):
    path = save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "c" / "last.pt")
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 3
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_tensorboard_events_hold_the_logged_metrics(tiny_prepared, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 2}, eval={"every_epochs": 1}))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/lr", "epoch/train_loss", "epoch/train_top1", "epoch/val_clip_top1"} <= tags
    history = read_history(tmp_path / "run")
    for kind, name in (("epoch", "train_loss"), ("epoch", "val_clip_top1"), ("step", "loss")):
        logged = [(h["step"], h[name]) for h in history if h["kind"] == kind]
        scalars = [(e.step, e.value) for e in events.Scalars(f"{kind}/{name}")]
        assert [s for s, _ in scalars] == [s for s, _ in logged]
        assert [v for _, v in scalars] == pytest.approx([v for _, v in logged], rel=1e-6)  # stored as float32


def test_epoch_records_the_time_spent_waiting_for_data(tiny_prepared, tmp_path, monkeypatch):
    # An injected clock instead of sleeps: each training clip read costs 40 ms and each training
    # forward 10 ms of "time", nothing else moves the clock; the epoch record must then say
    # exactly how much of the epoch was spent waiting for data (no wall-clock assertion, so the
    # result does not depend on the machine's load).
    import time

    clock = {"now": 1000.0}
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    real_build_dataset = train_module.build_dataset
    real_build_model = train_module.build_model_from_config
    read_cost = {"seconds": 0.0}
    forwards = {"train": 0}

    def timed_dataset(*args, **kwargs):
        ds = real_build_dataset(*args, **kwargs)
        read = ds.read

        def timed_read(entry, indices):
            clock["now"] += read_cost["seconds"]
            return read(entry, indices)

        ds.read = timed_read
        return ds

    def timed_model(*args, **kwargs):
        model = real_build_model(*args, **kwargs)

        def tick(module, inputs):
            if module.training:
                clock["now"] += 0.01
                forwards["train"] += 1

        model.register_forward_pre_hook(tick)
        return model

    monkeypatch.setattr(train_module, "build_dataset", timed_dataset)
    monkeypatch.setattr(train_module, "build_model_from_config", timed_model)
    cfg = dict(schedule={"epochs": 1}, nonlocal_blocks=None)
    fast = train(tiny_config(tiny_prepared, tmp_path / "fast", **cfg)).history[0]
    fast_steps = forwards["train"]
    read_cost["seconds"], forwards["train"] = 0.04, 0
    slow = train(tiny_config(tiny_prepared, tmp_path / "slow", **cfg)).history[0]
    n_train = len(real_build_dataset(tiny_config(tiny_prepared, tmp_path / "x"), subset="train", mode="train"))

    assert fast_steps == forwards["train"] > 0
    assert fast["data_fraction"] == pytest.approx(0.0, abs=1e-9)  # reads cost nothing: never waiting
    assert fast["epoch_seconds"] == pytest.approx(0.01 * fast_steps)
    data_seconds, compute_seconds = 0.04 * n_train, 0.01 * forwards["train"]
    assert slow["epoch_seconds"] == pytest.approx(data_seconds + compute_seconds)
    assert slow["data_fraction"] == pytest.approx(data_seconds / (data_seconds + compute_seconds))
