"""Shared test configuration: deterministic, single-threaded-friendly torch, and the hypothesis profiles.

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
