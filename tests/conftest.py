"""Shared test configuration: deterministic, single-threaded-friendly torch, the hypothesis profiles,
and a check after every test that it left the process's flush-to-zero setting as it found it.

Hypothesis profiles (the fuzz tests under ``tests/fuzz/``):

* ``ci`` (the default, what ``make test`` runs): a fixed number of examples per property,
  derandomised (the same examples on every run and machine), no example database, no
  per-example deadline (a loaded 2-core machine is not a bug);
* ``long``: the same properties with many more random examples, for a fuzzing session:
  ``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -p no:cacheprovider tests/fuzz``.
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from snl_video.engine.runtime import thread_flushes_denormals

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
