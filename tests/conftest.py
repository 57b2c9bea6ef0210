"""Shared test configuration: deterministic, single-threaded-friendly torch, the hypothesis profiles,
a check after every test that it left the process's flush-to-zero setting as it found it, and
the tiny prepared dataset and checkpoint that the engine, e2e and fault tests share. Where a
test goes (the tests mirror the package; cross-cutting ones in theme folders): tests/README.md.

Hypothesis profiles (the fuzz tests under ``tests/fuzz/``):

* ``ci`` (the default, what ``make test`` runs): a fixed number of examples per property,
  derandomised (the same examples on every run and machine), no example database, no
  per-example deadline (a loaded 2-core machine is not a bug);
* ``long``: the same properties with many more random examples, for a fuzzing session:
  ``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -p no:cacheprovider tests/fuzz``.
"""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

from snl_video.data.prepare import PrepareSettings, prepare_ucf101
from snl_video.data.synthetic import make_synthetic_ucf101
from snl_video.engine.runtime import thread_flushes_denormals

from .helpers import NUM_CLASSES, tiny_config

#: Whether this process flushed denormals before any test ran (IEEE subnormals, normally).
_FLUSHED_AT_START = thread_flushes_denormals()

_FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=50, derandomize=True, database=None, deadline=None,
                          suppress_health_check=_FUZZ_HEALTH, print_blob=True)
settings.register_profile("long", max_examples=2000, derandomize=False, database=None, deadline=None,
                          suppress_health_check=_FUZZ_HEALTH, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    # Tests run two xdist workers on two cores: one intra-op thread each.
    torch.set_num_threads(1)
    yield
    # every verb restores the caller's flush-to-zero setting when it returns (engine.runtime):
    # a test that leaves it changed would break the next one (hypothesis refuses to draw floats)
    assert thread_flushes_denormals() == _FLUSHED_AT_START, (
        "this test left flush-to-zero changed on the calling thread; a verb's scope "
        "(snl_video.engine.runtime.flush_denormal) should have restored it")


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 motion classes (right / left / up / down) x 16 videos, prepared at short side 48."""
    root = tmp_path_factory.mktemp("tiny_ucf")
    make_synthetic_ucf101(root / "raw", num_classes=NUM_CLASSES, videos_per_class=16, video_frames=16, frame_jitter=2,
                          seed=0, progress=False)
    prepare_ucf101(root / "raw" / "UCF-101", root / "raw" / "ucfTrainTestlist", root / "prepared", splits=[1],
                   workers=1, settings=PrepareSettings(short_side=48, num_frames=6, storage="npy"), progress=False)
    return root / "prepared"


@pytest.fixture(scope="session")
def tiny_snl_checkpoint(tiny_prepared: Path, tmp_path_factory: pytest.TempPathFactory):
    """A self-describing checkpoint of the tiny recipe (one SNL block, untrained), one of its videos,
    the recipe and the model: ``(cfg, checkpoint, video, model)``."""
    import torch

    from snl_video.engine.builders import build_model_from_config
    from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint

    out = tmp_path_factory.mktemp("tiny_snl_ckpt")
    cfg = tiny_config(tiny_prepared, out / "run")
    torch.manual_seed(0)
    model = build_model_from_config(cfg).eval()
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(cfg, class_names=None)},
                           out / "c.pt")
    video = sorted((tiny_prepared.parent / "raw" / "UCF-101").rglob("*.avi"))[0]
    return cfg, ckpt, video, model
