"""Flush-to-zero for denormals: set on every intra-op thread, scoped to a verb, and the opt-outs work.

What is checked is the arithmetic itself: a denormal times 0.5 is 0 when flushing is on
(on every thread that computes a share of the product) and 2**-129 when it is off; after a
verb returns, every thread is back as it was before (subnormals again in a fresh process).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from snl_video.engine.runtime import (
    FLUSH_DENORMAL_ENV,
    flush_denormal,
    flush_denormal_active,
    flush_denormal_wanted,
    on_each_thread,
    set_flush_denormal_all_threads,
    thread_flushes_denormals,
)

from ..helpers import tiny_config

_HAS_FTZ = torch.set_flush_denormal(False)  # False where the CPU has no such mode (not x86 SSE3)
needs_ftz = pytest.mark.skipif(not _HAS_FTZ, reason="this CPU has no flush-to-zero mode")


def _flushed_fraction(threads: int) -> float:
    """Share of a parallel product of denormals that came out 0 (each thread computes a slice)."""
    # float32 bits 0x00200000: exponent field 0, mantissa 2**-7 -> 2**-7 * 2**-126 = 2**-128, a denormal
    # (built from bits: converting a Python float, or reading it back, goes through the flags under test)
    x = torch.full((threads * 65536,), 0x0020_0000, dtype=torch.int32).view(torch.float32)
    return float((x * 0.5 == 0).double().mean())


def _subnormal_survives_here() -> bool:
    """Whether the calling thread keeps float32 subnormals (1e-40 is one; FTZ turns it into 0)."""
    return bool(torch.tensor(1e-40) * 1 != 0)


_POOL = 4  # every test below uses at most this many intra-op threads


@pytest.fixture
def clean_fp_state(monkeypatch: pytest.MonkeyPatch):
    """Denormals kept on every thread of the pool before and after the test; the thread count restored."""
    monkeypatch.delenv(FLUSH_DENORMAL_ENV, raising=False)
    threads = torch.get_num_threads()

    def keep_denormals_everywhere() -> None:
        # a team as large as any pool a test grows, so idle threads of a larger pool are reset too
        on_each_thread(lambda: torch.set_flush_denormal(False), threads=_POOL)
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
def test_the_per_thread_check_reads_what_torch_sets(clean_fp_state: None) -> None:
    torch.set_num_threads(2)
    assert set(on_each_thread(thread_flushes_denormals).values()) == {False}
    torch.set_flush_denormal(True)  # the calling thread only
    states = on_each_thread(thread_flushes_denormals)
    assert len(states) == 2 and sorted(states.values()) == [False, True]
    assert thread_flushes_denormals() and not _subnormal_survives_here()
    assert set_flush_denormal_all_threads(True)
    assert set(on_each_thread(thread_flushes_denormals).values()) == {True}


@needs_ftz
def test_the_scope_flushes_inside_and_restores_every_thread(clean_fp_state: None) -> None:
    torch.set_num_threads(2)
    with flush_denormal() as active:
        assert active is True
        assert flush_denormal_active() and _flushed_fraction(2) == 1.0
        assert not _subnormal_survives_here()
    assert _flushed_fraction(2) == 0.0 and _subnormal_survives_here()
    # a caller's own partial setting (torch's switch: this thread only) comes back as it was
    torch.set_flush_denormal(True)
    before = on_each_thread(thread_flushes_denormals)
    with flush_denormal():
        assert _flushed_fraction(2) == 1.0
    assert on_each_thread(thread_flushes_denormals) == before
    assert 0.0 < _flushed_fraction(2) < 1.0


@needs_ftz
def test_the_opt_outs_never_flush_and_restore_the_callers_setting(clean_fp_state: None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    with flush_denormal(False) as active:
        assert active is False and _flushed_fraction(2) == 0.0
    monkeypatch.setenv(FLUSH_DENORMAL_ENV, "0")
    with flush_denormal(True) as active:
        assert active is False and _flushed_fraction(2) == 0.0
    assert _flushed_fraction(2) == 0.0
    set_flush_denormal_all_threads(True)  # the caller flushes; the opted-out verb does not, then it is back
    with flush_denormal(True):
        assert _flushed_fraction(2) == 0.0 and _subnormal_survives_here()
    assert _flushed_fraction(2) == 1.0


@needs_ftz
def test_nested_scopes_restore_in_order(clean_fp_state: None) -> None:
    torch.set_num_threads(2)
    with flush_denormal():  # a study cell
        with flush_denormal():  # its training
            assert _flushed_fraction(2) == 1.0
        assert _flushed_fraction(2) == 1.0  # the cell still flushes: its evaluation comes next
        with flush_denormal(False):  # a nested verb that opts out
            assert _flushed_fraction(2) == 0.0
        assert _flushed_fraction(2) == 1.0
    assert _flushed_fraction(2) == 0.0


@needs_ftz
def test_the_scope_restores_after_an_error_and_on_threads_started_inside(clean_fp_state: None) -> None:
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="inside"):
        with flush_denormal():
            raise RuntimeError("inside")
    assert _flushed_fraction(2) == 0.0
    with flush_denormal():
        torch.set_num_threads(_POOL)  # the verb grows the pool: the new threads inherit its setting
        assert _flushed_fraction(_POOL) == 1.0
    assert torch.get_num_threads() == _POOL
    assert _flushed_fraction(_POOL) == 0.0
    assert set(on_each_thread(thread_flushes_denormals).values()) == {False}


def _train_recording_flush(tiny_prepared: Path, out: Path, monkeypatch: pytest.MonkeyPatch, **runtime_values) -> list:
    """Train one epoch of the tiny recipe; return flush_denormal_active() as seen inside each epoch."""
    from snl_video.engine import train as train_module

    seen: list[bool] = []
    original = train_module.train_one_epoch

    def recording(*args, **kwargs):
        seen.append(flush_denormal_active())
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", recording)
    cfg = tiny_config(tiny_prepared, out, schedule={"epochs": 1}, runtime=runtime_values)
    train_module.train(cfg)
    return seen


@needs_ftz
def test_training_flushes_while_it_runs_and_not_after(tiny_prepared: Path, tmp_path: Path, clean_fp_state: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import snl_video

    torch.set_num_threads(2)  # the check then covers a second intra-op thread too
    assert _train_recording_flush(tiny_prepared, tmp_path / "on", monkeypatch) == [True]
    # after the verb returns: subnormals again, on this thread and in a parallel op
    assert _subnormal_survives_here() and _flushed_fraction(2) == 0.0
    assert _train_recording_flush(tiny_prepared, tmp_path / "off", monkeypatch, flush_denormal=False) == [False]
    monkeypatch.setenv(FLUSH_DENORMAL_ENV, "0")
    assert _train_recording_flush(tiny_prepared, tmp_path / "env_off", monkeypatch) == [False]
    monkeypatch.delenv(FLUSH_DENORMAL_ENV)
    # the same through the public API, the way a notebook calls it
    snl_video.train(config=tiny_config(tiny_prepared, tmp_path / "api", schedule={"epochs": 1}))
    assert _subnormal_survives_here() and _flushed_fraction(2) == 0.0


@needs_ftz
def test_inference_verbs_flush_while_they_run_and_not_after(tiny_snl_checkpoint, tmp_path: Path,
                                                            clean_fp_state: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """predict, explain, export, spectrum and features: flushed inside (seen from their forward), restored after."""
    import snl_video
    from snl_video.engine.api import load_model

    _, ckpt, video, _ = tiny_snl_checkpoint
    torch.set_num_threads(2)
    loaded = load_model(checkpoint=ckpt)
    assert _flushed_fraction(2) == 0.0  # loading changes nothing
    seen: list[bool] = []

    model_class = type(loaded.model)

    def recording(method):
        def call(self, *args, **kwargs):
            # read per thread in Python floats, no tensor op: export traces this call with fake tensors
            seen.append(all(on_each_thread(thread_flushes_denormals).values()))
            return method(self, *args, **kwargs)
        return call

    monkeypatch.setattr(model_class, "__call__", recording(torch.nn.Module.__call__))
    monkeypatch.setattr(model_class, "forward_features", recording(model_class.forward_features))  # features'
    runs = {
        "predict": lambda: snl_video.predict([video], checkpoint=ckpt),
        "explain": lambda: snl_video.explain(video, checkpoint=ckpt, output_dir=tmp_path / "explain"),
        "export": lambda: snl_video.export(checkpoint=ckpt, output_file=tmp_path / "m.pt2", verify=True),
        "spectrum": lambda: snl_video.spectrum(video, checkpoint=ckpt, output_dir=tmp_path / "spectrum"),
        "features": lambda: snl_video.features([video], checkpoint=ckpt, output_dir=tmp_path / "features"),
    }
    for verb, run in runs.items():
        seen.clear()
        run()
        assert seen and all(seen), (verb, seen)
        assert _subnormal_survives_here() and _flushed_fraction(2) == 0.0, verb


@needs_ftz
def test_a_study_cell_flushes_from_its_training_through_its_evaluation(tiny_prepared: Path, tmp_path: Path,
                                                                       clean_fp_state: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The cell's scope holds between its training (whose own scope has closed) and its evaluation."""
    from snl_video.engine import evaluate as evaluate_module
    from snl_video.engine import train as train_module
    from snl_video.engine.study import load_study_spec, run_study

    smoke = Path(__file__).resolve().parents[2] / "configs" / "studies" / "smoke.yaml"
    spec = tmp_path / "one_cell.yaml"
    spec.write_text(smoke.read_text().replace("seeds: [0, 1]", "seeds: [0]")
                    .replace("recipe: configs/studies/smoke_base.yaml", f"recipe: {smoke.parent / 'smoke_base.yaml'}")
                    .replace("  snl: [nonlocal_blocks.kind=snl", "  # snl: [nonlocal_blocks.kind=snl"))
    seen: list[tuple[str, bool]] = []
    real_train, real_evaluation = train_module.train, evaluate_module.run_evaluation

    def train_then_look(cfg, **kwargs):
        result = real_train(cfg, **kwargs)
        seen.append(("after training", flush_denormal_active()))
        return result

    def look_then_evaluate(*args, **kwargs):
        seen.append(("before evaluation", flush_denormal_active()))
        return real_evaluation(*args, **kwargs)

    monkeypatch.setattr(train_module, "train", train_then_look)
    monkeypatch.setattr(evaluate_module, "run_evaluation", look_then_evaluate)
    torch.set_num_threads(2)
    result = run_study(load_study_spec(spec, [f"data.root={tiny_prepared}"]), tmp_path / "study", progress=False)
    assert [outcome.status for outcome in result.outcomes] == ["done"]
    assert seen == [("after training", True), ("before evaluation", True)]
    assert _subnormal_survives_here() and _flushed_fraction(2) == 0.0
