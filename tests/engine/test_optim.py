"""Fine-tuning knobs: parameter groups, gradient clipping, multistep / plateau schedules,
label smoothing and batch Mixup / CutMix on (B, C, T, H, W) clips.

References are independent: the effective learning rate and weight decay of each tensor
are read off an SGD step on zero gradients; the plateau schedule is compared with
``torch.optim.lr_scheduler.ReduceLROnPlateau``; the pre-clip norm with a norm accumulated by
gradient hooks; label smoothing with its closed form; CutMix with the box found in the output.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

from snl_video.config import ConfigError, config_from_dict
from snl_video.engine import train as train_module
from snl_video.engine.metric_log import read_history
from snl_video.engine.optim import batch_mixer, build_optimizer, build_scheduler
from snl_video.engine.train import train
from snl_video.models import build_model

from ..helpers import tiny_config


def _cfg(**sections):
    return config_from_dict({**sections, "runtime": {"device": "cpu", **sections.get("runtime", {})}})


def _tiny_model():
    torch.manual_seed(0)
    return build_model("r3d10", num_classes=4, nonlocal_blocks="snl", widen_factor=0.25)


# --------------------------------------------------------------------------------------
# 1. parameter groups
# --------------------------------------------------------------------------------------


def test_lr_mult_and_no_weight_decay_give_each_tensor_its_lr_and_decay(caplog):
    model = _tiny_model()
    cfg = _cfg(optim={"lr": 0.1, "momentum": 0.0, "weight_decay": 0.01,
                      "lr_mult": {"fc.*": 10, "nonlocal_blocks.*": 5, "*.bias": 3},
                      "no_weight_decay_on": ["norm", "bias"]})
    with caplog.at_level(logging.INFO, logger="snl_video.engine.optim"):
        opt = build_optimizer(model, cfg)
    # the expected values, from the names and module types (not from the code under test)
    norm_ids = {id(p) for m in model.modules() if isinstance(m, (torch.nn.BatchNorm3d, torch.nn.GroupNorm))
                for p in m.parameters(recurse=False)}
    expected = {}
    for name, p in model.named_parameters():
        mult = (10.0 if name.startswith("fc.") else 5.0 if name.startswith("nonlocal_blocks.")
                else 3.0 if name.endswith(".bias") else 1.0)
        decay = 0.0 if id(p) in norm_ids or name.endswith(".bias") else 0.01
        expected[name] = (0.1 * mult, decay)
    # read the effective lr and decay off one SGD step on zero gradients: p' = p - lr * wd * p
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # no zero tensors (BN biases, zero-initialised norms)
            p.grad = torch.zeros_like(p)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for name, p in model.named_parameters():
        lr, decay = expected[name]
        assert torch.allclose(p.detach(), before[name] * (1 - lr * decay), rtol=1e-6, atol=1e-7), name
    # "fc.bias" is decided by "fc.*" (first match wins); every group is logged with its size, lr and decay
    lines = [r.getMessage() for r in caplog.records if "optimizer group" in r.getMessage()]
    assert len(lines) == len(opt.param_groups) == len(set(expected.values())) == 7
    assert any("lr 1 (x10, lr_mult 'fc.*'), weight decay 0.01" in line for line in lines)
    assert any("lr 0.1 (x1, default), weight decay 0" in line for line in lines)


def test_a_pattern_that_matches_nothing_lists_the_top_level_modules():
    model = _tiny_model()
    with pytest.raises(ValueError, match=r"\['head\.\*'\] match no trainable parameter; .*: conv1, bn1, layer1, "
                                         r"layer2, layer3, layer4, fc, nonlocal_blocks \("):
        build_optimizer(model, _cfg(optim={"lr_mult": {"fc.*": 10, "head.*": 10}}))
    with pytest.raises(ValueError, match=r"\['fc.bias'\] only match parameters that an earlier pattern"):
        build_optimizer(model, _cfg(optim={"lr_mult": {"fc.*": 10, "fc.bias": 10}}))
    # frozen parameters are not matched
    from snl_video.engine.train import freeze_until

    freeze_until(model, "layer4")
    with pytest.raises(ValueError, match=r"\['layer2\.\*'\] match no trainable"):
        build_optimizer(model, _cfg(optim={"lr_mult": {"layer2.*": 0.1}}))


def test_default_optimizer_is_one_group_as_before():
    opt = build_optimizer(_tiny_model(), _cfg())
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 1e-4


@pytest.mark.parametrize("section, message", [
    ({"optim": {"lr_mult": {"fc.*": 0}}}, "optim.lr_mult.fc.*: must be > 0"),
    ({"optim": {"no_weight_decay_on": ["norms"]}}, "invalid choice 'norms'"),
    ({"optim": {"clip_grad_norm": -1}}, "optim.clip_grad_norm: must be > 0"),
    ({"optim": {"label_smoothing": 1.0}}, "optim.label_smoothing: must be in [0, 1)"),
    ({"schedule": {"kind": "multistep"}}, "schedule.milestones: schedule.kind=multistep needs milestones"),
    ({"schedule": {"kind": "multistep", "milestones": [50, 40]}}, "must increase strictly"),
    ({"schedule": {"kind": "plateau"}, "eval": {"every_epochs": 0}}, "set eval.every_epochs >= 1"),
    ({"schedule": {"factor": 1.0}}, "schedule.factor: must be in (0, 1)"),
    ({"data": {"cutmix_alpha": -0.5}}, "data.cutmix_alpha: must be >= 0"),
    ({"runtime": {"activation_checkpointing": ["layer5"]}}, "invalid choice 'layer5'"),
])
def test_new_keys_are_validated(section, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**section, "runtime": {"device": "cpu", **section.get("runtime", {})}})
    assert message in str(info.value)


# --------------------------------------------------------------------------------------
# 2. schedules and clipping
# --------------------------------------------------------------------------------------


def _lrs(cfg, metrics):
    """lr of each epoch; ``metrics[e]`` (or None) is the evaluation after epoch e."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim.lr)
    sched = build_scheduler(opt, cfg)
    out = []
    for e, metric in enumerate(metrics):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if metric is not None:
            sched.lr_lambdas[0].observe(metric, epochs_done=e + 1)
        sched.step()
    return out


def test_multistep_with_warmup():
    cfg = _cfg(optim={"lr": 0.01}, schedule={"epochs": 8, "kind": "multistep", "milestones": [3, 5], "gamma": 0.1,
                                             "warmup_epochs": 2, "warmup_start_factor": 0.1})
    assert _lrs(cfg, [None] * 8) == pytest.approx([0.001, 0.0055, 0.01, 0.001, 0.001, 0.0001, 0.0001, 0.0001])


METRICS = [10.0, 20.0, 20.0, 19.0, 25.0, 25.0, 25.0, 24.0, 30.0, 29.0, 28.0, 27.0, 26.0, 25.0]


@pytest.mark.parametrize("patience", [0, 1, 2])
def test_plateau_equals_reduce_lr_on_plateau(patience):
    cfg = _cfg(optim={"lr": 0.1}, schedule={"epochs": 20, "kind": "plateau", "patience": patience, "factor": 0.5,
                                            "min_lr": 0.01})
    ours = _lrs(cfg, METRICS)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=patience, min_lr=0.01)
    theirs = []
    for metric in METRICS:
        theirs.append(opt.param_groups[0]["lr"])
        ref.step(metric)
    assert ours == pytest.approx(theirs)
    assert min(ours) < 0.1  # the sequence does reduce


def test_plateau_after_warmup_ignores_warmup_evaluations():
    cfg = _cfg(optim={"lr": 0.1}, schedule={"epochs": 10, "kind": "plateau", "patience": 0, "factor": 0.5,
                                            "warmup_epochs": 2, "warmup_start_factor": 0.5})
    # evaluations after epochs 1 and 2 (the warm-up) are not counted: 5 is the first best
    lrs = _lrs(cfg, [9.0, 8.0, 5.0, 4.0, 6.0, 6.0])
    assert lrs == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.05, 0.05])


def test_plateau_state_survives_a_weights_only_checkpoint(tmp_path):
    cfg = _cfg(optim={"lr": 0.1}, schedule={"epochs": 20, "kind": "plateau", "patience": 1, "factor": 0.5})
    full = _lrs(cfg, METRICS)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(opt, cfg)
    for e, metric in enumerate(METRICS[:6]):
        opt.step()
        sched.lr_lambdas[0].observe(metric, epochs_done=e + 1)
        sched.step()
    torch.save({"scheduler": sched.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched2 = build_scheduler(opt2, cfg)
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    rest = []
    for e, metric in enumerate(METRICS[6:], start=6):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.lr_lambdas[0].observe(metric, epochs_done=e + 1)
        sched2.step()
    assert rest == pytest.approx(full[6:])


def test_clip_grad_norm_logs_the_pre_clip_norm_and_clips(tiny_prepared, tmp_path, monkeypatch):
    # An independent pre-clip norm: hooks accumulate each tensor's squared gradient norm as
    # the backward pass produces it; the step pre-hook sees the post-clip gradients.
    seen: list[tuple[float, float]] = []
    real = train_module.build_optimizer

    def build_and_watch(model, cfg):
        opt = real(model, cfg)
        params = [p for g in opt.param_groups for p in g["params"]]
        pending: dict[int, float] = {}
        for p in params:
            p.register_post_accumulate_grad_hook(lambda t: pending.__setitem__(id(t), float(t.grad.pow(2).sum())))

        def pre_hook(optimizer, args, kwargs):
            post = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None))
            seen.append((math.sqrt(sum(pending.values())), post))
            pending.clear()

        opt.register_step_pre_hook(pre_hook)
        return opt

    monkeypatch.setattr(train_module, "build_optimizer", build_and_watch)
    clip = 0.5
    train(tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 1}, optim={"clip_grad_norm": clip}))
    logged = [h["grad_norm"] for h in read_history(tmp_path / "run") if h["kind"] == "step"]
    assert len(logged) == len(seen) > 3
    for value, (pre, post) in zip(logged, seen):
        assert value == pytest.approx(pre, rel=1e-4)
        assert post == pytest.approx(min(pre, clip), rel=1e-4)
    assert any(pre > clip for pre, _ in seen)  # it did clip
    epoch = next(h for h in read_history(tmp_path / "run") if h["kind"] == "epoch")
    assert epoch["grad_norm_max"] == pytest.approx(max(pre for pre, _ in seen), rel=1e-4)


# --------------------------------------------------------------------------------------
# 3. regularisation
# --------------------------------------------------------------------------------------


def test_label_smoothing_loss_is_its_closed_form(tiny_prepared, tmp_path, monkeypatch):
    # (1 - eps) * CE + eps * mean_c(-log p_c): the first step of two runs shares weights and batch
    logits: list[torch.Tensor] = []
    real = train_module.build_model_from_config

    def build_and_watch(*args, **kwargs):
        model = real(*args, **kwargs)
        model.fc.register_forward_hook(lambda m, i, out: logits.append(out.detach().clone()))
        return model

    monkeypatch.setattr(train_module, "build_model_from_config", build_and_watch)
    eps = 0.2
    train(tiny_config(tiny_prepared, tmp_path / "plain", schedule={"epochs": 1}))
    first = logits[0]
    logits.clear()
    train(tiny_config(tiny_prepared, tmp_path / "smooth", schedule={"epochs": 1}, optim={"label_smoothing": eps}))
    assert torch.equal(logits[0], first)
    step_loss = lambda d: next(h["loss"] for h in read_history(d) if h["kind"] == "step")  # noqa: E731
    uniform = float((-torch.log_softmax(first, 1)).mean(1).mean())
    expected = (1 - eps) * step_loss(tmp_path / "plain") + eps * uniform
    assert step_loss(tmp_path / "smooth") == pytest.approx(expected, rel=1e-5)


def _distinct_clips(b=4, c=3, t=5, h=12, w=16):
    # every clip constant at its own value: which clip a pixel came from is readable
    return torch.arange(1, b + 1, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, c, t, h, w).clone()


def test_cutmix_pastes_one_box_on_every_frame_and_weights_labels_by_area():
    cfg = _cfg(model={"num_classes": 5}, data={"cutmix_alpha": 1.0})
    mix = batch_mixer(cfg)
    clips, labels = _distinct_clips(), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(3)
    boxes_seen = 0
    for _ in range(20):
        out, soft = mix(clips, labels)
        assert out.shape == clips.shape and type(out) is torch.Tensor and soft.shape == (4, 5)
        for i in range(4):
            src = (i - 1) % 4  # torchvision pairs each clip with the previous one (roll by 1)
            pasted = out[i] == clips[src]
            assert torch.all((out[i] == clips[i]) | pasted)
            # the same (H, W) box on every channel and frame
            assert torch.equal(pasted, pasted[:1, :1].expand_as(pasted))
            area = float(pasted[0, 0].float().mean())
            if 0 < area:
                boxes_seen += 1
                rows, cols = pasted[0, 0].any(1).nonzero(), pasted[0, 0].any(0).nonzero()
                assert int(pasted[0, 0].sum()) == len(rows) * len(cols)  # a rectangle
            assert soft[i, labels[i]] == pytest.approx(1 - area, abs=1e-6)
            assert soft[i, labels[src]] == pytest.approx(area, abs=1e-6)
    assert boxes_seen > 20


def test_mixup_blends_whole_clips_with_the_label_weights():
    mix = batch_mixer(_cfg(model={"num_classes": 4}, data={"mixup_alpha": 0.4}))
    clips, labels = _distinct_clips(), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    out, soft = mix(clips, labels)
    for i in range(4):
        lam = float(soft[i, labels[i]])
        assert torch.allclose(out[i], lam * clips[i] + (1 - lam) * clips[(i - 1) % 4], atol=1e-5)
    assert batch_mixer(_cfg()) is None  # off by default


def test_train_accuracy_under_mixing_counts_the_dominant_label(tiny_prepared, tmp_path, monkeypatch):
    # a mixer that keeps the clips but declares the *next* class dominant (0.7): a run whose
    # accuracy followed the original labels would differ from one that follows the dominant one
    from snl_video.engine import optim as optim_module

    predictions: list[torch.Tensor] = []
    dominant: list[torch.Tensor] = []

    def fake_mixer(cfg):
        def mix(clips, labels):
            soft = torch.full((len(labels), cfg.model.num_classes), 0.1)
            soft[torch.arange(len(labels)), (labels + 1) % cfg.model.num_classes] = 0.7
            dominant.append((labels + 1) % cfg.model.num_classes)
            return clips, soft
        return mix

    real = train_module.build_model_from_config

    def build_and_watch(*args, **kwargs):
        model = real(*args, **kwargs)
        model.fc.register_forward_hook(lambda m, i, out: predictions.append(out.argmax(1)))
        return model

    monkeypatch.setattr(train_module, "batch_mixer", fake_mixer)
    monkeypatch.setattr(train_module, "build_model_from_config", build_and_watch)
    assert optim_module.batch_mixer is not fake_mixer
    result = train(tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 1}, optim={"lr": 0.1}))
    correct = sum(int((p == d).sum()) for p, d in zip(predictions, dominant))
    total = sum(len(d) for d in dominant)
    assert result.history[0]["train_top1"] == pytest.approx(100.0 * correct / total)


# --------------------------------------------------------------------------------------
# 7. progress off a terminal
# --------------------------------------------------------------------------------------


def test_training_and_evaluation_log_plain_lines_when_redirected(tiny_prepared, tmp_path, caplog):
    # under pytest stderr is not a terminal: no bar fragments, one line per epoch and evaluation
    cfg = tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 2}, eval={"every_epochs": 1},
                      runtime={"progress": True})
    with caplog.at_level(logging.INFO, logger="snl_video.progress"):
        train(cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "snl_video.progress"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "eval clips", "epoch 2/2", "eval clips"]
    assert all("(100%)" in line and "\r" not in line for line in lines)
    assert "loss=" in lines[0] and "clips_s=" in lines[0]
