"""Memory and speed knobs of the training model: activation checkpointing and ``torch.compile``.

:func:`apply_activation_checkpointing` makes every residual block of the chosen stages run
under :func:`torch.utils.checkpoint.checkpoint` (non-reentrant): its inner activations are
not kept for the backward pass but recomputed there, trading about one extra forward of
those stages for their activation memory. The gradients are the same as without (tested).
Two details matter for a network with BatchNorm:

* the recomputation runs the block again in training mode, which would update the
  BatchNorm running statistics a second time; the recomputation is wrapped in a context
  that puts them back, so the running statistics also equal an ordinary step's;
* only the block's ``forward`` is replaced (an instance attribute), so state-dict keys do
  not change and checkpoints load with or without the option.
"""

from __future__ import annotations

import logging
import time
import types
from contextlib import nullcontext
from typing import Any, Sequence, cast

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["apply_activation_checkpointing", "compile_model"]


class _RestoreBatchNormStats:
    """Snapshot the running statistics of ``module``'s BatchNorm layers on entry, restore on exit."""

    def __init__(self, module: nn.Module) -> None:
        self.norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.saved: list[dict[str, Tensor]] = []

    def __enter__(self) -> None:
        self.saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None} for m in self.norms]

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for m, buffers in zip(self.norms, self.saved):
                for k, value in buffers.items():
                    getattr(m, k).copy_(value)
        self.saved = []


def _checkpointed_forward(self: nn.Module, *args: Any) -> Any:
    original = type(self).forward
    if not (self.training and torch.is_grad_enabled()):
        return original(self, *args)
    return checkpoint(original, self, *args, use_reentrant=False,
                      context_fn=lambda: (nullcontext(), _RestoreBatchNormStats(self)))


def apply_activation_checkpointing(model: nn.Module, stages: Sequence[str]) -> int:
    """Recompute the activations of every residual block of ``stages`` (e.g. ``["layer2", "layer3"]``)
    in the backward pass; returns the number of blocks wrapped.

    Raises:
        ValueError: ``model`` has no such stage.
    """
    count = 0
    for stage in stages:
        blocks = getattr(model, stage, None)
        if not isinstance(blocks, nn.Sequential):
            names = [n for n, m in model.named_children() if isinstance(m, nn.Sequential)]
            raise InvalidValueError(f"runtime.activation_checkpointing: the model has no stage {stage!r}; its stages: "
                             f"{', '.join(names) or 'none'}")
        for block in blocks:
            block.forward = types.MethodType(_checkpointed_forward, block)
            count += 1
    return count


def compile_model(net: nn.Module) -> nn.Module:
    """``torch.compile(net)``; compilation itself happens on the first call (the training loop logs its time)."""
    start = time.perf_counter()
    compiled = torch.compile(net)
    logger.info("torch.compile: model wrapped in %.2f s; the first step compiles it (timed in the log)",
                time.perf_counter() - start)
    # torch.compile of a Module returns an OptimizedModule (a Module); its stubs say "a callable"
    return cast(nn.Module, compiled)
