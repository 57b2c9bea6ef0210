"""Training at scale: gradient accumulation, 2-process gloo DDP, bf16 autocast and channels_last_3d on the CPU.

The reference for each is an independent way to take the same optimizer steps:
W processes x batch b = 1 process x batch b x W accumulation (every clip sees the same
augmentation, see ``ClipDataset.set_epoch_seed``), and batch k*b = k micro-batches of b
when no BatchNorm uses batch statistics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snl_video.config import save_config
from snl_video.engine.builders import build_dataset
from snl_video.engine.checkpoint import load_checkpoint
from snl_video.engine.train import read_history, train

from ..helpers import (
    assert_same_up_to_summation_order,
    bn_on_running_statistics,
    build_models_on_running_statistics,
    tiny_config,
)

REPO = Path(__file__).resolve().parents[2]


def _parameters(ckpt: Path) -> dict[str, torch.Tensor]:
    """The trainable tensors of a checkpoint's model (BatchNorm running statistics left out:
    under DDP they are rank 0's, which is expected to differ)."""
    state = load_checkpoint(ckpt)["model"]
    return {k: v for k, v in state.items() if not any(s in k for s in ("running_mean", "running_var", "num_batches"))}


def _momenta(ckpt: Path) -> list[torch.Tensor]:
    return [s["momentum_buffer"] for s in load_checkpoint(ckpt)["optimizer"]["state"].values()]


def _assert_same_training(a: Path, b: Path) -> None:
    """The same optimizer steps up to the order of float32 sums (see tests/helpers.py): parameters
    and momenta within a bound relative to each tensor's scale, and the steps did move them."""
    assert_same_up_to_summation_order(_parameters(a), _parameters(b))
    ma, mb = _momenta(a), _momenta(b)
    assert len(ma) == len(mb) and max(m.abs().max().item() for m in ma) > 0
    assert_same_up_to_summation_order(dict(enumerate(ma)), dict(enumerate(mb)))


# Runs `snl_video.cli` with every BatchNorm of the trained model on running statistics (the
# in-process reference runs get the same through `build_models_on_running_statistics`): gradient all-reduce and
# accumulation sum in different orders, which batch statistics over 1x2x2 maps would amplify.
_CLI_ON_RUNNING_STATISTICS = """\
import sys
from snl_video.engine import train as train_module
from tests.helpers import bn_on_running_statistics
real_build = train_module.build_model_from_config
def build(*args, **kwargs):
    model = real_build(*args, **kwargs)
    bn_on_running_statistics(model)
    return model
train_module.build_model_from_config = build
from snl_video.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli_script(tmp_path: Path) -> str:
    script = tmp_path / "cli_on_running_statistics.py"
    script.write_text(_CLI_ON_RUNNING_STATISTICS)
    return str(script)


def _epoch_records(run: Path) -> list[dict]:
    return [h for h in read_history(run) if h["kind"] == "epoch"]


def test_two_process_gloo_training_equals_one_process_with_accumulation(tiny_prepared, tmp_path, monkeypatch):
    # batch 1 per step; BatchNorm on running statistics in both runs (see _CLI_ON_RUNNING_STATISTICS)
    build_models_on_running_statistics(monkeypatch)
    n_train = len(build_dataset(tiny_config(tiny_prepared, tmp_path / "x"), subset="train", mode="train"))
    assert n_train % 2 == 0, "an even count: no DistributedSampler padding, the two runs see the same clips"
    sections = dict(data={"batch_size": 1}, schedule={"epochs": 2, "kind": "step", "step_size": 1, "gamma": 0.5},
                    optim={"lr": 0.01})
    one = train(tiny_config(tiny_prepared, tmp_path / "one", runtime={"grad_accum_steps": 2}, **sections))

    cfg_two = tiny_config(tiny_prepared, tmp_path / "two", **sections)
    config_file = save_config(cfg_two, tmp_path / "two.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           _cli_script(tmp_path), "train", "--config", str(config_file)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]

    _assert_same_training(one.last_checkpoint, tmp_path / "two" / "checkpoints" / "last.pt")
    # the parameters moved (the comparison is not between two copies of the initial model)
    first = load_checkpoint(one.last_checkpoint)["model"]
    assert first["fc.weight"].abs().sum() > 0
    # epoch records are over both processes: the same loss, accuracy and clip count
    ra, rb = _epoch_records(tmp_path / "one"), _epoch_records(tmp_path / "two")
    assert len(ra) == len(rb) == 2
    for a, b in zip(ra, rb):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["train_top1"] == pytest.approx(a["train_top1"])


def test_a_non_finite_loss_on_one_process_stops_every_process_cleanly(tiny_prepared, tmp_path):
    # rank 1's loss becomes NaN in epoch 2; rank 0's stays finite. Both must stop with the
    # clear error (rank 0 must not wait forever in the gradient all-reduce), exit code 1,
    # and the checkpoint of epoch 1 must stay.
    cfg = tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 3})
    config_file = save_config(cfg, tmp_path / "run.yaml")
    script = tmp_path / "nan_on_rank1.py"
    script.write_text(
        "import os, sys, torch\n"
        "from snl_video.cli import main\n"
        "from snl_video.engine import train as t\n"
        "real = t.train_one_epoch\n"
        "def patched(*args, epoch, **kwargs):\n"
        "    if epoch == 1 and os.environ['RANK'] == '1':\n"
        "        class NanLoss(torch.nn.CrossEntropyLoss):\n"
        "            def forward(self, input, target):\n"
        "                return super().forward(input, target) * float('nan')\n"
        "        t.nn.CrossEntropyLoss = NanLoss\n"
        "    return real(*args, epoch=epoch, **kwargs)\n"
        "t.train_one_epoch = patched\n"
        f"sys.exit(main(['train', '--config', {str(config_file)!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "stopped: loss is nan at epoch 2, step 1" in err  # rank 1
    assert "stopped: a non-finite loss on another process at epoch 2, step 1" in err  # rank 0, not killed
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1


def test_accumulation_equals_the_large_batch(tiny_prepared, tmp_path):
    # Only the head trains (every BatchNorm frozen in eval mode, no non-local block), so
    # batch 8 and 2 x 4 accumulated are the same gradient. The epoch's last group holds a
    # single micro-batch (the train subset is not a multiple of 8): it must not be halved.
    n_train = len(build_dataset(tiny_config(tiny_prepared, tmp_path / "x"), subset="train", mode="train"))
    assert n_train % 8 != 0 and n_train % 8 <= 4
    base = dict(nonlocal_blocks=None, schedule={"epochs": 2, "kind": "cosine"}, optim={"lr": 0.1})
    big = train(tiny_config(tiny_prepared, tmp_path / "big", data={"batch_size": 8},
                            runtime={"freeze_until": "head"}, **base))
    acc = train(tiny_config(tiny_prepared, tmp_path / "acc", data={"batch_size": 4},
                            runtime={"freeze_until": "head", "grad_accum_steps": 2}, **base))
    _assert_same_training(big.last_checkpoint, acc.last_checkpoint)


def test_bf16_autocast_on_the_cpu_trains_in_bf16_and_tracks_fp32(tiny_prepared, tmp_path, monkeypatch):
    from snl_video.engine import train as train_module

    seen: list[torch.dtype] = []
    initial: list[dict[str, torch.Tensor]] = []
    real_build = train_module.build_model_from_config

    def build_and_watch(*args, **kwargs):
        model = real_build(*args, **kwargs)
        initial.append({k: v.clone() for k, v in model.state_dict().items()})
        model.conv1.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        return model

    monkeypatch.setattr(train_module, "build_model_from_config", build_and_watch)
    # a small learning rate keeps both runs near the start, where the updates are sums of
    # gradients at almost the same weights (the trajectories of larger steps drift apart)
    sections = dict(schedule={"epochs": 1}, optim={"lr": 0.001})
    fp32 = train(tiny_config(tiny_prepared, tmp_path / "fp32", **sections))
    assert set(seen) == {torch.float32}
    seen.clear()
    bf16 = train(tiny_config(tiny_prepared, tmp_path / "bf16", runtime={"amp": "bf16"}, **sections))
    assert set(seen) == {torch.bfloat16}
    # master weights stay float32; both runs start from the same weights and their updates
    # agree to bf16 precision (that autocast really ran is checked by `seen`)
    assert all(torch.equal(initial[0][k], initial[1][k]) for k in initial[0])
    pa, pb = _parameters(fp32.last_checkpoint), _parameters(bf16.last_checkpoint)
    keys = [k for k in pa if pa[k].is_floating_point()]
    assert all(pb[k].dtype == torch.float32 and torch.isfinite(pb[k]).all() for k in keys)
    da = torch.cat([(pa[k] - initial[0][k]).flatten() for k in keys])
    db = torch.cat([(pb[k] - initial[0][k]).flatten() for k in keys])
    # bf16 keeps 8 mantissa bits: one backward pass through this random-init network
    # differs from fp32 by ~17 % (relative gradient norm), so compare directions
    cosine = float(torch.nn.functional.cosine_similarity(da, db, dim=0))
    assert da.norm() > 0 and cosine > 0.8, cosine
    la, lb = _epoch_records(tmp_path / "fp32")[0]["train_loss"], _epoch_records(tmp_path / "bf16")[0]["train_loss"]
    assert lb == pytest.approx(la, rel=0.02)
    print(f"bf16 vs fp32 update: cosine {cosine:.4f}; loss {la:.5f} vs {lb:.5f}")


def test_channels_last_3d_gives_the_same_training(tiny_prepared, tmp_path, monkeypatch):
    # The memory format changes only the order of the sums inside each kernel. With BatchNorm on
    # batch statistics the tiny model is so ill-conditioned that any two summation orders drift
    # apart by percents within an epoch (3.6e-3 in conv1 on an AVX-512/AMX CPU, whose oneDNN
    # kernels differ): no statement about the layout. On running statistics the network is well
    # conditioned and two float32 orders agree to ~1e-6 of each tensor's scale after an epoch;
    # the bound below (1e-4, ~800 float32 epsilons) leaves room for other CPUs' kernels, while a
    # real layout bug (channels mixed up) moves tensors by their own size. (float64 cannot be the
    # channels-last run: CPU conv3d has no float64 channels-last kernel and silently returns
    # contiguous outputs.)
    from snl_video.engine import train as train_module

    formats: list[bool] = []
    real_build = train_module.build_model_from_config

    def build_and_watch(*args, **kwargs):
        model = real_build(*args, **kwargs)
        bn_on_running_statistics(model)
        model.layer1[0].register_forward_pre_hook(
            lambda m, args: formats.append(args[0].is_contiguous(memory_format=torch.channels_last_3d)))
        return model

    monkeypatch.setattr(train_module, "build_model_from_config", build_and_watch)
    sections = dict(schedule={"epochs": 1})
    a = train(tiny_config(tiny_prepared, tmp_path / "a", **sections))
    assert len(formats) > 1 and not any(formats)  # several optimizer steps
    formats.clear()
    b = train(tiny_config(tiny_prepared, tmp_path / "b", runtime={"channels_last": True}, **sections))
    assert formats and all(formats)  # activations really run channels-last

    pa, pb = _parameters(a.last_checkpoint), _parameters(b.last_checkpoint)
    assert pa.keys() == pb.keys()
    for key in pa:
        scale = pa[key].abs().max().item()
        assert (pa[key] - pb[key]).abs().max().item() <= 1e-4 * scale + 1e-12, key
    for ma, mb in zip(_momenta(a.last_checkpoint), _momenta(b.last_checkpoint), strict=True):
        assert ma.abs().max() > 0  # the steps moved the weights
        assert (ma - mb).abs().max().item() <= 1e-4 * ma.abs().max().item()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_torchrun_nodes_without_a_shared_output_dir_train_and_evaluate(tiny_prepared, tmp_path, monkeypatch):
    # Two "machines" on this one: two torchrun launchers (--nnodes=2, c10d rendezvous on
    # 127.0.0.1, one gloo process each), each with its own output folder. They must take the
    # optimizer steps of one process with 2-step accumulation, and the final evaluation must
    # work although only global rank 0's folder holds the checkpoint.
    from snl_video.engine.evaluate import run_evaluation

    build_models_on_running_statistics(monkeypatch)  # BatchNorm on running statistics here and in the nodes' processes
    sections = dict(data={"batch_size": 1}, schedule={"epochs": 1, "kind": "step", "step_size": 1, "gamma": 0.5},
                    optim={"lr": 0.01}, eval={"num_clips": 1})
    one = train(tiny_config(tiny_prepared, tmp_path / "one", runtime={"grad_accum_steps": 2}, **sections))
    reference = run_evaluation(tiny_config(tiny_prepared, tmp_path / "one", **sections), one.last_checkpoint)

    config_file = save_config(tiny_config(tiny_prepared, tmp_path / "unused", **sections), tmp_path / "nodes.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    port = _free_port()
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               f"--node_rank={node}", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}",
               "--rdzv_id=two_nodes_test", _cli_script(tmp_path), "train", "--config", str(config_file),
               f"runtime.output_dir={tmp_path / f'node{node}'}"]
        procs.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outputs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    # global rank 0 (whichever node c10d made it) wrote checkpoints and evaluation; the other node nothing of them
    written = [n for n in (0, 1) if (tmp_path / f"node{n}" / "checkpoints" / "last.pt").is_file()]
    assert len(written) == 1, written
    main_dir, other_dir = tmp_path / f"node{written[0]}", tmp_path / f"node{1 - written[0]}"
    assert (main_dir / "eval" / "metrics.json").is_file() and not (other_dir / "eval").exists()
    _assert_same_training(one.last_checkpoint, main_dir / "checkpoints" / "last.pt")
    metrics = json.loads((main_dir / "eval" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["clip_top1"] == pytest.approx(reference.clip_top1)
    assert metrics["video_top1"] == pytest.approx(reference.video_top1)
