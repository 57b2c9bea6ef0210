"""`study --jobs N` workers end with the study process: a study killed with SIGKILL leaves no
orphan training the cells queued to it (they would hold the cells' locks and race the rerun)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from snl_video.engine.study import end_with_parent


def _block_forever() -> None:
    threading.Event().wait()


def _run_a_cell(pid_file: str) -> None:
    """A cell that never ends; it says it has started by writing its PID (rename: whole or absent)."""
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    _block_forever()


def _study_like_parent(pid_file: str) -> None:
    """Stands for the study process: a pool with the study's initializer, one cell running."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=end_with_parent, initargs=(os.getpid(),)) as pool:
        pool.submit(_run_a_cell, pid_file)
        _block_forever()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped by its new parent) counts as ended
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_ends_when_the_study_process_is_killed(tmp_path):
    pid_file = tmp_path / "worker.pid"
    parent = multiprocessing.get_context("spawn").Process(target=_study_like_parent, args=(str(pid_file),))
    parent.start()
    deadline = time.monotonic() + 120  # bounds on the waits, not timings being tested
    while not pid_file.is_file() and parent.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.is_file(), "the worker never started its cell"
    worker = int(pid_file.read_text())
    assert _alive(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.join()
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    still = _alive(worker)
    if still:
        os.kill(worker, signal.SIGKILL)
    assert not still, "the worker outlived the killed study process"
