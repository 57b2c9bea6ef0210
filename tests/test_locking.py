"""One writer per output folder: :func:`snl_video.locking.output_lock`.

Other processes are real subprocesses: one that holds a lock until its stdin closes, and
short-lived ones whose PIDs are dead by the time a test uses them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from snl_video.locking import LOCK_NAME, OutputLockedError, output_lock, read_lock

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys\nfrom snl_video.locking import output_lock\nwith output_lock(sys.argv[1], sys.argv[2]):\n"
        " print('held', flush=True)\n sys.stdin.read()\n")


class Holder:
    """A subprocess holding ``folder``'s lock until :meth:`release`."""

    def __init__(self, folder: Path, verb: str = "train") -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("RANK", None)
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), verb], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout.readline().strip() == "held"
        self.pid = self.proc.pid

    def release(self) -> int:
        self.proc.communicate("")
        return self.proc.returncode


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": dead_pid(), "started": "2026-01-01T00:00:00+00:00",
              "verb": "train", "command": "snl-video train --config r.yaml", **fields}
    path = folder / LOCK_NAME
    path.write_text(json.dumps(record))
    return path


def test_the_lock_file_names_the_holder_and_goes_with_the_block(tmp_path):
    out = tmp_path / "run"
    with output_lock(out, "eval") as folder:
        assert folder == out
        record = json.loads((out / LOCK_NAME).read_text())
        assert record["host"] == socket.gethostname() and record["pid"] == os.getpid() and record["verb"] == "eval"
        assert record["started"] and isinstance(record["pid_start"], int)
        (out / "result.txt").write_text("kept")
    assert not (out / LOCK_NAME).exists()
    assert (out / "result.txt").read_text() == "kept"


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    holder = Holder(out, "train")
    try:
        with pytest.raises(OutputLockedError) as info:
            with output_lock(out, "eval"):
                pytest.fail("entered a folder another process holds")
        text = str(info.value)
        assert f"PID {holder.pid} on host {socket.gethostname()}" in text and "`snl-video train`" in text
        assert "wait for it to finish, or choose another output folder" in text and "\n" not in text
        assert read_lock(out).pid == holder.pid  # the holder's lock is untouched
    finally:
        assert holder.release() == 0
    assert not (out / LOCK_NAME).exists()
    with output_lock(out, "eval"):  # free again
        pass


def test_a_stale_lock_of_a_dead_process_on_this_host_is_taken_over_with_a_warning(tmp_path, caplog):
    out = tmp_path / "run"
    pid = dead_pid()
    write_lock(out, pid=pid)
    with caplog.at_level(logging.WARNING, logger="snl_video.locking"):
        with output_lock(out, "train"):
            assert read_lock(out).pid == os.getpid()
    assert f"took over the stale lock of `snl-video train` (PID {pid}" in caplog.text
    assert "that process is gone" in caplog.text
    assert not (out / LOCK_NAME).exists()


def test_a_lock_whose_pid_was_reused_by_another_process_is_stale(tmp_path, caplog):
    out = tmp_path / "run"
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:  # the PID is alive but started at another time than the lock's holder did
        write_lock(out, pid=other.pid, pid_start=1)
        with caplog.at_level(logging.WARNING, logger="snl_video.locking"), output_lock(out, "train"):
            pass
        assert "that PID now belongs to another process" in caplog.text
    finally:
        other.communicate(b"")


def test_a_live_pid_without_the_flock_is_never_guessed_stale(tmp_path):
    out = tmp_path / "run"
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        # its real start time (proc(5): field 22 of /proc/PID/stat), as its own lock would record
        start = int(Path(f"/proc/{other.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        write_lock(out, pid=other.pid, pid_start=start)
        with pytest.raises(OutputLockedError, match=f"PID {other.pid}"):
            with output_lock(out, "train"):
                pass
    finally:
        other.communicate(b"")


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    out = tmp_path / "run"
    path = write_lock(out, host="gpu-node-7")  # its PID is dead here, which says nothing there
    before = path.read_bytes()
    with pytest.raises(OutputLockedError) as info:
        with output_lock(out, "train"):
            pass
    text = str(info.value)
    assert "host gpu-node-7" in text and "never taken over" in text and f"delete {path}" in text
    assert path.read_bytes() == before


def test_an_unreadable_lock_is_refused_with_the_file_to_delete(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text("{not json")
    with pytest.raises(OutputLockedError, match=f"cannot be read.*delete {out / LOCK_NAME}"):
        with output_lock(out, "train"):
            pass


@pytest.mark.parametrize("stop", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_lock_is_released_on_an_exception_and_on_ctrl_c(tmp_path, stop):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(type(stop)):
        with output_lock(out, "train"):
            raise stop
    assert not (out / LOCK_NAME).exists()
    assert out.is_dir()  # it existed before: kept
    holder = Holder(out)  # and another process can take it
    assert holder.release() == 0


def test_a_folder_the_lock_created_is_removed_when_nothing_was_written(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(ValueError):
        with output_lock(out, "train"):
            raise ValueError("a run that fails to start")
    assert not (tmp_path / "a").exists()  # a failed start leaves no folder behind
    with output_lock(out, "train"):
        (out / "x").write_text("1")
    assert (out / "x").is_file() and not (out / LOCK_NAME).exists()


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    out = tmp_path / "run"
    with output_lock(out, "train"):
        with output_lock(out, "eval"):
            assert (out / LOCK_NAME).is_file()
        assert read_lock(out).verb == "train"  # the inner block did not release it
    assert not (out / LOCK_NAME).exists()


def test_under_torchrun_only_rank_0_takes_the_lock(tmp_path, monkeypatch):
    out = tmp_path / "run"
    holder = Holder(out)
    try:
        monkeypatch.setenv("RANK", "1")
        with output_lock(out, "train"):  # rank 1 of the holder's job: no lock of its own, no refusal
            assert read_lock(out).pid == holder.pid
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(OutputLockedError):
            with output_lock(out, "train"):
                pass
    finally:
        holder.release()


def test_concurrent_starters_get_exactly_one_lock(tmp_path):
    """8 processes try the same folder at once: one holds it, the seven others are refused."""
    out = tmp_path / "run"
    out.mkdir()
    script = ("import sys, time\nfrom snl_video.locking import output_lock, OutputLockedError\n"
              "try:\n with output_lock(sys.argv[1], 'train'):\n  print('got', flush=True)\n  sys.stdin.read()\n"
              "except OutputLockedError:\n print('refused', flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(8)]
    answers = [p.stdout.readline().strip() for p in procs]
    for p in procs:
        p.communicate("")
    assert sorted(answers) == ["got"] + ["refused"] * 7
    assert not (out / LOCK_NAME).exists()
