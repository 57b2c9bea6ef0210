"""Shared test configuration: deterministic, single-threaded-friendly torch."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    # Tests run two xdist workers on two cores: one intra-op thread each.
    torch.set_num_threads(1)
    yield
