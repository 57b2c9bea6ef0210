"""Activation checkpointing (same gradients and BatchNorm statistics, fewer saved bytes) and torch.compile."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from snl_video.benchmarking import saved_tensor_bytes
from snl_video.engine.memory import apply_activation_checkpointing
from snl_video.engine.train import train
from snl_video.models import build_model

from ..helpers import assert_same_up_to_summation_order, build_models_on_running_statistics, tiny_config


def _step(model, x, y):
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach()


def test_activation_checkpointing_gives_the_same_gradients_and_statistics():
    torch.manual_seed(0)
    plain = build_model("r3d10", num_classes=5, nonlocal_blocks={"kind": "snl", "positions": {"layer2": [0]}},
                        widen_factor=0.25).train()
    ckpt = copy.deepcopy(plain)
    assert apply_activation_checkpointing(ckpt, ["layer2", "layer3"]) == 2
    x, y = torch.randn(2, 3, 8, 32, 32), torch.tensor([1, 3])
    la, lb = _step(plain, x, y), _step(ckpt, x, y)
    assert torch.equal(la, lb)
    # the same gradients up to the order of float32 sums (relative to each gradient's scale: an
    # element-wise rtol is machine-dependent where terms cancel)
    assert_same_up_to_summation_order({n: p.grad for n, p in plain.named_parameters()},
                                      {n: p.grad for n, p in ckpt.named_parameters()})
    # the recomputation in backward must not update BatchNorm running statistics twice
    buffers = dict(ckpt.named_buffers())
    for name, b in plain.named_buffers():
        assert torch.equal(b, buffers[name]), name
    # the same keys: checkpoints load with or without the option
    assert list(plain.state_dict()) == list(ckpt.state_dict())
    # the inner activations of layer2/layer3 are no longer kept for backward (their blocks'
    # inputs still are); with every stage checkpointed, most of the network's
    saved_plain = saved_tensor_bytes(lambda: plain(x).sum())
    saved_ckpt = saved_tensor_bytes(lambda: ckpt(x).sum())
    assert saved_ckpt < 0.9 * saved_plain, (saved_ckpt, saved_plain)
    all_stages = copy.deepcopy(plain)
    apply_activation_checkpointing(all_stages, ["layer1", "layer2", "layer3", "layer4"])
    assert saved_tensor_bytes(lambda: all_stages(x).sum()) < 0.5 * saved_plain
    # evaluation mode runs the plain forward
    ckpt.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), ckpt(x))


def test_activation_checkpointing_names_the_stages_on_a_bad_one():
    model = build_model("r3d10", num_classes=5, widen_factor=0.25)
    with pytest.raises(ValueError, match="no stage 'blocks'; its stages: layer1, layer2, layer3, layer4"):
        apply_activation_checkpointing(model, ["blocks"])


def test_training_with_activation_checkpointing_equals_plain_training(tiny_prepared, tmp_path, monkeypatch):
    # Recomputation in backward changes only the order in which gradient terms are summed. An
    # epoch of the tiny model on BatchNorm batch statistics amplifies such rounding by orders of
    # magnitude, differently on each CPU's kernels; on running statistics it is well conditioned
    # and the runs agree to a bound derived from float32 precision (tests/helpers.py). That
    # checkpointing does not update the running statistics twice is checked above, in one step.
    from snl_video.engine.checkpoint import load_checkpoint

    build_models_on_running_statistics(monkeypatch)
    sections = dict(schedule={"epochs": 1})
    a = train(tiny_config(tiny_prepared, tmp_path / "a", **sections))
    b = train(tiny_config(tiny_prepared, tmp_path / "b", runtime={"activation_checkpointing": ["layer2", "layer3"]},
                          **sections))
    ca, cb = load_checkpoint(a.last_checkpoint), load_checkpoint(b.last_checkpoint)
    momenta = [s["momentum_buffer"] for s in ca["optimizer"]["state"].values()]
    assert momenta and max(m.abs().max().item() for m in momenta) > 0  # the steps moved the weights
    assert_same_up_to_summation_order(ca["model"], cb["model"])


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3, 4)))


@pytest.mark.slow  # inductor compiles C++ kernels: 60-80 s cold on a 2-core CPU, even for this model
def test_compiled_model_gives_the_same_outputs_and_gradients_on_the_cpu(caplog):
    from snl_video.engine.memory import compile_model

    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(2, 3, 4, 8, 8, requires_grad=True)
    with caplog.at_level(logging.INFO, logger="snl_video.engine.memory"):
        compiled = compile_model(model)
    assert "torch.compile" in caplog.text
    out_eager = model(x)
    out_compiled = compiled(x)
    assert torch.allclose(out_eager, out_compiled, rtol=1e-5, atol=1e-6)
    (g_eager,) = torch.autograd.grad(out_eager.sum(), x)
    (g_compiled,) = torch.autograd.grad(out_compiled.sum(), x)
    assert torch.allclose(g_eager, g_compiled, rtol=1e-5, atol=1e-6)
    # the compiled module shares the parameters: state dict keys of the plain model are what is saved
    assert compiled._orig_mod is model


def test_runtime_compile_compiles_the_training_model_and_logs_the_first_step(tiny_prepared, tmp_path, monkeypatch,
                                                                             caplog):
    # the wiring only (a real compilation is the slow test above): the module handed to
    # compile_model is the one trained, and the first step's time is logged
    from snl_video.engine import memory

    compiled: list[nn.Module] = []

    def fake_compile(net):
        compiled.append(net)
        return net

    monkeypatch.setattr(memory, "compile_model", fake_compile)
    with caplog.at_level(logging.INFO, logger="snl_video.engine.train"):
        result = train(tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 1},
                                   runtime={"compile": True, "progress": True}))
    assert len(compiled) == 1 and isinstance(compiled[0], nn.Module)
    assert "first step of epoch 1 with torch.compile" in caplog.text
    assert result.epochs_done == 1
