"""Fuzz tests run with IEEE subnormals intact.

The engine turns flush-to-zero on for the whole process once it loads or trains a model
(:func:`snl_video.engine.runtime.setup_cpu_runtime`); hypothesis refuses to draw floats then
(it checks that subnormals exist), so a fuzz test that shares a process with an engine test
turns it off for its own duration and restores the state after.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from snl_video.engine.runtime import flush_denormal_active, set_flush_denormal_all_threads


@pytest.fixture(autouse=True)
def ieee_subnormals() -> Iterator[None]:
    was_on = flush_denormal_active()
    set_flush_denormal_all_threads(False)
    try:
        yield
    finally:
        if was_on:
            set_flush_denormal_all_threads(True)
