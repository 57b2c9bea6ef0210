"""Faults survived: one writer per run folder, an unwritable output
folder before any heavy work, a full disk while writing, SIGKILL while a checkpoint is written.

How each fault is made:

* an unwritable folder: a read-only tmpfs mounted on it where this process may mount (root
  with CAP_SYS_ADMIN, as in the project's CI container); else, for a non-root user, a folder of
  mode 0555; else (root that may not mount: permission bits do not stop root) ``os.open`` and
  ``os.mkdir`` are made to fail with ``EACCES`` under that folder;
* a full disk: injected always (the stream :func:`snl_video.fileio.atomic_write` writes
  through, or ``open`` in :mod:`snl_video.data.prepared`, raises ``OSError(ENOSPC)`` after a
  byte budget), and for real on a 1 MiB tmpfs where one may be mounted (skipped with the
  reason elsewhere);
* SIGKILL: a forked writer saving checkpoints in a loop, killed at seeded random moments.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import snl_video.data.prepared as prepared_module
import snl_video.fileio as fileio
from snl_video.cli import main
from snl_video.config import dump_config, load_config
from snl_video.data.synthetic import make_synthetic_ucf101
from snl_video.engine.checkpoint import LAST, load_checkpoint, save_checkpoint
from snl_video.engine.train import read_history
from snl_video.fileio import OutputWriteError, append_line
from snl_video.locking import LOCK_NAME, read_lock

from ..helpers import tiny_config

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ helpers


class FillsUp:
    """A write stream over ``raw`` that takes ``budget`` bytes, then fails as a full disk does."""

    def __init__(self, raw, budget: int) -> None:
        self.raw, self.left = raw, budget

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        if n > self.left:
            self.raw.write(bytes(memoryview(data).cast("B")[: self.left]))
            self.left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.left -= n
        return self.raw.write(data)

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.raw.close()


def inject_enospc(monkeypatch, *, budget: int = 1000, only=lambda fd: True) -> None:
    """Every :func:`~snl_video.fileio.atomic_write` (for which ``only(fd)``) fills the disk after ``budget`` bytes."""
    real = fileio.open_for_writing

    def opener(fd: int):
        stream = real(fd)
        return FillsUp(stream, budget) if only(fd) else stream

    monkeypatch.setattr(fileio, "open_for_writing", opener)


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs (a disk that fills up for real); skipped where this process may not mount one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC tests cover this everywhere)")
    where = tmp_path / "small_disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


@pytest.fixture
def readonly_dir(tmp_path, monkeypatch):
    """A folder nothing can be written into (see the module doc for how, by privilege)."""
    where = tmp_path / "readonly"
    where.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(where)], capture_output=True)
        if done.returncode == 0:
            yield where
            subprocess.run(["umount", str(where)], check=False)
            return
        real_open, real_mkdir = os.open, os.mkdir

        def refuse(path) -> bool:
            return str(os.fspath(path)).startswith(str(where) + os.sep)

        def guarded_open(path, flags, *args, **kwargs):
            if refuse(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)

        def guarded_mkdir(path, *args, **kwargs):
            if refuse(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", guarded_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)
        yield where
        return
    where.chmod(0o555)
    yield where
    where.chmod(0o755)


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_prepared, tmp_path_factory):
    """A 1-epoch run of the tiny recipe: (recipe file, last.pt)."""
    from snl_video.engine.train import train

    out = tmp_path_factory.mktemp("faults") / "run"
    cfg = tiny_config(tiny_prepared, out, schedule={"epochs": 1}, runtime={"tensorboard": False})
    result = train(cfg)
    return out / "config.yaml", result.last_checkpoint


@pytest.fixture(scope="module")
def few_videos(tmp_path_factory) -> Path:
    """A raw UCF-101-style tree of 2 classes x 2 videos (fast to prepare or predict)."""
    root = tmp_path_factory.mktemp("few")
    make_synthetic_ucf101(root, num_classes=2, videos_per_class=2, video_frames=12, seed=1, progress=False)
    return root


# ------------------------------------------------------------------------------ item 3: one writer per run folder


def test_two_trains_into_one_folder_the_second_is_refused_at_once_and_the_first_result_is_intact(
        tiny_prepared, tmp_path, capsys):
    out = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(dump_config(tiny_config(tiny_prepared, out, schedule={"epochs": 2},
                                              runtime={"tensorboard": False})))
    killed_save = out / "checkpoints" / f".{LAST}.k2j4x9q1.tmp"  # what a save killed mid-write leaves
    killed_save.parent.mkdir(parents=True)
    killed_save.write_bytes(b"half a checkpoint")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    first = subprocess.Popen([sys.executable, "-m", "snl_video.cli", "train", "--config", str(recipe), "--no-eval"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait (no timing assertion) until the first run holds the folder
        deadline = time.monotonic() + 300
        while (read_lock(out) is None or read_lock(out).pid != first.pid) and first.poll() is None:
            assert time.monotonic() < deadline, "the first train never took the lock"
            time.sleep(0.01)
        assert first.poll() is None, "the first train finished before the second could start: " + first.stderr.read()
        assert main(["train", "--config", str(recipe), "--no-eval"]) == 2
        err = one_line(capsys.readouterr().err)
        assert f"is in use by `snl-video train` (PID {first.pid} on host" in err
        assert read_lock(out).pid == first.pid
    finally:
        stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    # the first run's result, whole: every epoch once, a checkpoint of the last epoch, no lock left
    epochs = [r["epoch"] for r in read_history(out) if r["kind"] == "epoch"]
    assert epochs == [1, 2]
    assert load_checkpoint(out / "checkpoints" / LAST)["epoch"] == 2
    assert load_config(out / "config.yaml") == load_config(recipe)  # the record is the first run's, once
    assert not (out / LOCK_NAME).exists() and not killed_save.exists()


def test_eval_into_a_folder_another_process_holds_is_refused(tiny_checkpoint, tmp_path, capsys):
    recipe, last = tiny_checkpoint
    out = tmp_path / "eval"
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom snl_video.locking import output_lock\n"
                               f"with output_lock({str(out)!r}, 'eval'):\n print('held', flush=True)\n sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["eval", "--config", str(recipe), "--checkpoint", str(last), "--out", str(out)]) == 2
        assert f"PID {holder.pid}" in one_line(capsys.readouterr().err)
        assert not (out / "metrics.json").exists()
    finally:
        holder.communicate("")


# ------------------------------------------------------------------------------ item 6: an unwritable folder


def _no_heavy_work(monkeypatch):
    def heavy(*args, **kwargs):
        raise AssertionError("heavy work started before the output folder was checked")

    import snl_video.data.prepare as prepare_module
    import snl_video.engine.loading as loading_module
    import snl_video.engine.evaluate as evaluate_module
    import snl_video.engine.train as train_module

    monkeypatch.setattr(train_module, "train", heavy)
    monkeypatch.setattr(evaluate_module, "run_evaluation", heavy)
    monkeypatch.setattr(prepare_module, "prepare_one", heavy)
    monkeypatch.setattr(loading_module, "load_inference_model", heavy)  # the one model loader of every verb


@pytest.mark.parametrize("verb", ["train", "eval", "prepare", "export", "predict", "features"])
def test_an_unwritable_output_folder_is_one_line_before_any_heavy_work(verb, readonly_dir, tiny_prepared, few_videos,
                                                                       tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(dump_config(tiny_config(tiny_prepared, readonly_dir / "run")))
    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"never read")
    videos = few_videos / "UCF-101"
    args = {
        "train": ["train", "--config", str(recipe)],
        "eval": ["eval", "--config", str(recipe), "--checkpoint", str(ckpt), "--out", str(readonly_dir / "eval")],
        "prepare": ["prepare", "ucf101", "--videos", str(videos), "--splits", str(few_videos / "ucfTrainTestlist"),
                    "--out", str(readonly_dir / "prepared"), "--no-progress"],
        "export": ["export", "--checkpoint", str(ckpt), "--format", "pt2", "--out", str(readonly_dir / "m" / "m.pt2")],
        "predict": ["predict", str(videos), "--checkpoint", str(ckpt), "--out", str(readonly_dir / "p" / "p.csv")],
        "features": ["features", str(videos), "--checkpoint", str(ckpt), "--out", str(readonly_dir / "feats")],
    }[verb]
    _no_heavy_work(monkeypatch)
    assert main(args) == 2
    err = one_line(capsys.readouterr().err)
    assert f"snl-video {verb}: error: " in err and "not writable" in err and str(readonly_dir) in err
    assert "choose another output folder" in err


# ------------------------------------------------------------------------------ item 6: a full disk


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / LAST
    save_checkpoint({"model": {}, "epoch": 1, "w": torch.full((1000,), 1.0)}, path)
    before = path.read_bytes()
    inject_enospc(monkeypatch, budget=2000)
    with pytest.raises(OutputWriteError) as info:
        save_checkpoint({"model": {}, "epoch": 2, "w": torch.full((1000,), 2.0)}, path)
    text = str(info.value)
    assert f"cannot write {path}: No space left on device (ENOSPC); the previous file is kept" in text
    assert "free space" in text and info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    again = pickle.loads(pickle.dumps(info.value))  # as a prepare worker process sends it back
    assert str(again) == text and again.errno == errno.ENOSPC
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert temp_files(tmp_path) == []


def test_a_full_disk_at_an_epoch_checkpoint_stops_train_with_one_line_and_the_last_good_checkpoint(
        tiny_prepared, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(dump_config(tiny_config(tiny_prepared, out, schedule={"epochs": 2},
                                              runtime={"tensorboard": False})))
    saves = []

    def second_checkpoint(fd: int) -> bool:  # the epoch-2 last.pt (and nothing else) meets the full disk
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if name.startswith(f".{LAST}."):
            saves.append(name)
        return name.startswith(f".{LAST}.") and len(saves) == 2

    inject_enospc(monkeypatch, budget=10_000, only=second_checkpoint)
    assert main(["train", "--config", str(recipe), "--no-eval"]) == 2
    err = one_line(capsys.readouterr().err)
    assert f"cannot write {out / 'checkpoints' / LAST}: No space left on device" in err and "previous file is kept" in err
    assert load_checkpoint(out / "checkpoints" / LAST)["epoch"] == 1  # loads, and is the last good one
    assert temp_files(out) == [] and not (out / LOCK_NAME).exists()


def test_a_full_disk_while_writing_predictions_keeps_the_previous_file(tiny_checkpoint, few_videos, tmp_path, capsys,
                                                                       monkeypatch):
    _, last = tiny_checkpoint
    target = tmp_path / "predictions.csv"
    args = ["predict", str(few_videos / "UCF-101"), "--checkpoint", str(last), "--out", str(target), "--no-progress",
            "--top-k", "4"]
    assert main(args) == 0
    before = target.read_bytes()
    capsys.readouterr()
    inject_enospc(monkeypatch, budget=100)
    assert main(args) == 2
    err = one_line(capsys.readouterr().err)
    assert "No space left on device" in err and "previous file is kept" in err
    assert target.read_bytes() == before and temp_files(tmp_path) == []


def test_a_full_disk_while_writing_features_keeps_every_finished_video_and_its_index_row(
        tiny_checkpoint, few_videos, tmp_path, capsys, monkeypatch):
    _, last = tiny_checkpoint
    out = tmp_path / "feats"
    written = []

    def third_npy(fd: int) -> bool:
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if name.endswith(".tmp") and ".npy." in name:
            written.append(name)
            return len(written) == 3
        return False

    inject_enospc(monkeypatch, budget=64, only=third_npy)
    args = ["features", str(few_videos / "UCF-101"), "--checkpoint", str(last), "--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = one_line(capsys.readouterr().err)
    assert "No space left on device" in err
    done = sorted(out.rglob("*.npy"))
    assert len(done) == 2 and all(np.load(p).shape == (128,) for p in done)
    rows = (out / "index.csv").read_text().splitlines()
    assert rows[0] == "video,features,shape,status,label,class_name,subset" and len(rows) == 3
    assert all(r.endswith(",128,ok,,,") for r in rows[1:])  # label, class name and subset: files do not say
    assert temp_files(out) == []
    monkeypatch.undo()
    assert main(args) == 0  # resumes: the two kept, the others written
    assert "2 written, 2 already there" in capsys.readouterr().out


def test_a_full_disk_while_preparing_stops_with_one_line_not_a_bad_video(few_videos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "prepared"
    real_open = open
    frames = []

    def filling_open(path, mode="r", *args, **kwargs):  # the prepared module's `open`: frames files
        f = real_open(path, mode, *args, **kwargs)
        if "w" in mode and ".npy.tmp-" in str(path):
            frames.append(path)
            if len(frames) == 2:
                return FillsUp(f, 500)
        return f

    monkeypatch.setattr(prepared_module, "open", filling_open, raising=False)
    args = ["prepare", "ucf101", "--videos", str(few_videos / "UCF-101"), "--splits",
            str(few_videos / "ucfTrainTestlist"), "--out", str(out), "--no-progress", "--workers", "1",
            "--storage", "npy"]  # the injected fault fills a .npy frames file
    assert main(args) == 2
    err = one_line(capsys.readouterr().err)
    assert "No space left on device" in err and ".npy" in err
    assert temp_files(out) == [] and not (out / LOCK_NAME).exists()
    monkeypatch.undo()
    assert main(args) == 0  # resumes; no video was recorded as broken by the full disk
    capsys.readouterr()
    import json

    counts = json.loads((out / "report.json").read_text())["counts"]
    assert sum(counts.values()) == 4 and "error" not in counts, counts


def test_a_really_full_disk_keeps_the_previous_checkpoint_and_rows(small_tmpfs):
    path = small_tmpfs / LAST
    save_checkpoint({"model": {}, "epoch": 1, "w": torch.zeros(50_000)}, path)  # 200 kB of 1 MiB
    before = path.read_bytes()
    with pytest.raises(OutputWriteError, match="No space left on device .*previous file is kept"):
        save_checkpoint({"model": {}, "epoch": 2, "w": torch.zeros(400_000)}, path)  # 1.6 MB: does not fit
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in small_tmpfs.iterdir()) == [LAST]
    log = small_tmpfs / "metrics.jsonl"
    append_line(log, '{"epoch": 1}')
    filler = small_tmpfs / "filler"
    with pytest.raises(OSError):
        with open(filler, "wb") as f:
            f.write(b"\0" * (2 << 20))
    with pytest.raises(OutputWriteError, match="the rows written before are kept"):
        append_line(log, "x" * 100_000)
    assert log.read_text().splitlines()[0] == '{"epoch": 1}'


def test_a_full_disk_met_by_a_plain_append_is_one_line_too(tiny_prepared, tmp_path, capsys, monkeypatch):
    import snl_video.engine.train as train_module

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.jsonl))

    monkeypatch.setattr(train_module.MetricLogger, "log", full)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(dump_config(tiny_config(tiny_prepared, tmp_path / "run", schedule={"epochs": 1},
                                              runtime={"tensorboard": False})))
    assert main(["train", "--config", str(recipe), "--no-eval"]) == 2
    err = one_line(capsys.readouterr().err)
    assert f"cannot write {tmp_path / 'run' / 'metrics.jsonl'}: No space left on device (ENOSPC)" in err


# ------------------------------------------------------------------------------ item 6: SIGKILL while saving


def _save_forever(path: str, done, seed: int) -> None:
    """Save checkpoints of 0.8-6 MB in a loop; ``done`` is the step of the last completed save."""
    rng = random.Random(seed)
    step = done.value
    while True:
        step += 1
        save_checkpoint({"step": step, "w": torch.full((rng.randint(200_000, 1_500_000),), float(step))}, path)
        done.value = step


def kill_while_saving(tmp_path: Path, kills: int, *, seed: int = 20) -> dict[str, int]:
    """SIGKILL a checkpoint-writing process ``kills`` times at random moments; after each kill,
    ``last.pt`` must load with ``weights_only=True`` and be the last completed save or the next."""
    path = tmp_path / LAST
    save_checkpoint({"step": 0, "w": torch.zeros(10)}, path)
    ctx = mp.get_context("fork")  # torch is imported already: a child starts in milliseconds
    done = ctx.Value("i", 0)
    rng = random.Random(seed)
    figures = {"kills": 0, "mid_write": 0, "new": 0, "old": 0}
    for _ in range(kills):
        child = ctx.Process(target=_save_forever, args=(str(path), done, rng.randrange(1 << 30)), daemon=True)
        child.start()
        time.sleep(rng.uniform(0.0, 0.25))  # a random moment, not an assertion
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        figures["kills"] += 1
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state["step"] in (done.value, done.value + 1), (state["step"], done.value)
        assert bool((state["w"] == float(state["step"])).all())
        figures["new" if state["step"] == done.value + 1 else "old"] += 1
        leftovers = [p for p in tmp_path.iterdir() if p.name != LAST]
        figures["mid_write"] += bool(leftovers)  # killed inside a save: its temporary file is all it left
        for p in leftovers:
            p.unlink()
        done.value = state["step"]
    return figures


def test_sigkill_while_saving_checkpoints_never_leaves_a_last_pt_that_does_not_load(tmp_path):
    figures = kill_while_saving(tmp_path, 24)
    assert figures["kills"] == 24
    assert figures["mid_write"] >= 1  # the kills did land inside writes


def test_only_atomic_write_temporaries_are_removed_as_stale(tmp_path):
    from snl_video.fileio import remove_stale_temporaries

    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / f".{LAST}.k2j4x9q1.tmp").write_bytes(b"half a checkpoint")
    (ckpts / "notes.txt").write_text("kept")
    assert remove_stale_temporaries(ckpts) == 1
    assert sorted(p.name for p in ckpts.iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_sigkill_while_saving_checkpoints_200_times(tmp_path):
    figures = kill_while_saving(tmp_path, 200, seed=7)
    assert figures["kills"] == 200 and figures["mid_write"] >= 20
