"""Flush-to-zero for denormals: set on every intra-op thread, applied by the engine, and the opt-outs work.

What is checked is the arithmetic itself: a denormal times 0.5 is 0 when flushing is on
(on every thread that computes a share of the product) and 2**-129 when it is off.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from snl_video.engine import runtime
from snl_video.engine.runtime import (
    FLUSH_DENORMAL_ENV,
    flush_denormal_active,
    flush_denormal_wanted,
    set_flush_denormal_all_threads,
)

from .conftest import tiny_config

_HAS_FTZ = torch.set_flush_denormal(False)  # False where the CPU has no such mode (not x86 SSE3)
needs_ftz = pytest.mark.skipif(not _HAS_FTZ, reason="this CPU has no flush-to-zero mode")


def _flushed_fraction(threads: int) -> float:
    """Share of a parallel product of denormals that came out 0 (each thread computes a slice)."""
    # float32 bits 0x00200000: exponent field 0, mantissa 2**-7 -> 2**-7 * 2**-126 = 2**-128, a denormal
    # (built from bits: converting a Python float, or reading it back, goes through the flags under test)
    x = torch.full((threads * 65536,), 0x0020_0000, dtype=torch.int32).view(torch.float32)
    return float((x * 0.5 == 0).double().mean())


@pytest.fixture
def clean_fp_state(monkeypatch: pytest.MonkeyPatch):
    """Denormals kept on every thread before and after the test; the thread count restored."""
    monkeypatch.delenv(FLUSH_DENORMAL_ENV, raising=False)
    threads = torch.get_num_threads()

    def keep_denormals_everywhere() -> None:
        torch.set_num_threads(max(threads, 2))
        set_flush_denormal_all_threads(False)  # every pool thread, not only this one
        torch.set_num_threads(threads)

    keep_denormals_everywhere()
    yield
    keep_denormals_everywhere()


def test_wanted_reads_config_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FLUSH_DENORMAL_ENV, raising=False)
    assert flush_denormal_wanted(True) is True
    assert flush_denormal_wanted(False) is False
    for off in ("0", "false", "No", " off "):
        monkeypatch.setenv(FLUSH_DENORMAL_ENV, off)
        assert flush_denormal_wanted(True) is False
    monkeypatch.setenv(FLUSH_DENORMAL_ENV, "1")
    assert flush_denormal_wanted(True) is True
    assert flush_denormal_wanted(False) is False  # either opt-out wins
    monkeypatch.setenv(FLUSH_DENORMAL_ENV, "maybe")
    with pytest.raises(ValueError, match=r"SNL_VIDEO_FLUSH_DENORMAL='maybe'.*0/1"):
        flush_denormal_wanted(True)


@needs_ftz
def test_every_intra_op_thread_flushes(clean_fp_state: None) -> None:
    torch.set_num_threads(2)
    assert _flushed_fraction(2) == 0.0
    assert not flush_denormal_active()
    # torch's own switch sets only the calling thread: the other thread's slice keeps its denormals
    torch.set_flush_denormal(True)
    assert 0.0 < _flushed_fraction(2) < 1.0
    assert not flush_denormal_active()
    assert set_flush_denormal_all_threads(True)
    assert _flushed_fraction(2) == 1.0
    assert flush_denormal_active()
    assert set_flush_denormal_all_threads(False)
    assert _flushed_fraction(2) == 0.0


@needs_ftz
def test_setup_cpu_runtime_and_its_opt_outs(clean_fp_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime.setup_cpu_runtime() is True
    assert flush_denormal_active()
    assert runtime.setup_cpu_runtime(flush_denormal=False) is False
    assert _flushed_fraction(1) == 0.0
    monkeypatch.setenv(FLUSH_DENORMAL_ENV, "0")
    assert runtime.setup_cpu_runtime() is False
    assert _flushed_fraction(1) == 0.0


def _train_recording_flush(tiny_prepared: Path, out: Path, monkeypatch: pytest.MonkeyPatch, **runtime_values) -> list:
    """Train one epoch of the tiny recipe; return flush_denormal_active() as seen inside each epoch."""
    from snl_video.engine import train as train_module

    seen: list[bool] = []
    original = train_module._train_one_epoch

    def recording(*args, **kwargs):
        seen.append(flush_denormal_active())
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_one_epoch", recording)
    cfg = tiny_config(tiny_prepared, out, schedule={"epochs": 1}, runtime=runtime_values)
    train_module.train(cfg)
    return seen


@needs_ftz
def test_training_runs_with_denormals_flushed(tiny_prepared: Path, tmp_path: Path, clean_fp_state: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)  # the check then covers a second intra-op thread too
    assert _train_recording_flush(tiny_prepared, tmp_path / "on", monkeypatch) == [True]
    set_flush_denormal_all_threads(False)
    assert _train_recording_flush(tiny_prepared, tmp_path / "off", monkeypatch, flush_denormal=False) == [False]
    monkeypatch.setenv(FLUSH_DENORMAL_ENV, "0")
    assert _train_recording_flush(tiny_prepared, tmp_path / "env_off", monkeypatch) == [False]
