"""Inference precision: ``fp32`` (the default) or ``bf16`` autocast, on the CPU as on a GPU.

One spelling for every inference verb: ``--precision fp32|bf16`` (``predict``, ``features``,
``eval``; ``eval`` maps it onto ``runtime.amp``, which the evaluation already honours on the
CPU). On a CPU with native bf16 (AVX512-BF16 or AMX-BF16, what oneDNN reports), bf16
autocast with channels-last 3D activations roughly doubles the r3d50 forward (see
``docs/cpu_inference.md`` for the figures and the accuracy cost). On a CPU without it bf16
is emulated and slower than fp32, so it is **refused** with a one-line error instead of
silently running slow.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Literal

import torch

from ..errors import InvalidValueError

logger = logging.getLogger(__name__)

__all__ = ["Precision", "PRECISIONS", "cpu_has_native_bf16", "autocast_dtype", "amp_setting",
           "FP32_CHANNELS_LAST_ON_CPU", "channels_last_by_default"]

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 / AMX-BF16): oneDNN's own check,
    else the ``/proc/cpuinfo`` flags."""
    try:
        if torch.backends.mkldnn.is_available():
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an older torch without the op
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: plain fp32).

    ``bf16`` on a CPU without native bf16 is an error (it would be emulated: slower than
    fp32); on a CUDA device without bf16 support too.
    """
    if precision not in PRECISIONS:
        raise InvalidValueError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    kind = torch.device(device).type
    if kind == "cpu" and not cpu_has_native_bf16():
        raise InvalidValueError("--precision bf16: this CPU has no native bf16 (AVX512-BF16 or AMX-BF16), so bf16 "
                                "would be emulated and slower than fp32; use --precision fp32")
    if kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidValueError("--precision bf16: this GPU does not support bf16; use --precision fp32")
    return torch.bfloat16


def amp_setting(precision: str) -> str:
    """The ``runtime.amp`` value of ``precision`` (``fp32`` -> ``none``), for ``eval``."""
    if precision not in PRECISIONS:
        raise InvalidValueError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return "none" if precision == "fp32" else "bf16"


#: Model families (architecture name prefixes) whose fp32 CPU forward is faster with
#: channels-last 3D activations, with and without an SNL block, as measured by
#: ``scripts/bench_precision.py speed`` (``docs/cpu_inference.md``). The others stay
#: contiguous in fp32. In bf16 the CPU always uses channels-last (faster in every family).
#: i3d_r50: 1.31x / 1.19x (with SNL) and, rerun, 1.25x / 1.38x on a quiet machine; predict in
#: channels-last equals eval in the contiguous layout (tests/engine/test_predict.py).
FP32_CHANNELS_LAST_ON_CPU: tuple[str, ...] = ("i3d_r50",)


def channels_last_by_default(architecture: str, precision: str, device: torch.device | str) -> bool:
    """Whether inference feeds channels-last 3D: on the CPU in bf16 always, in fp32 for the
    families of :data:`FP32_CHANNELS_LAST_ON_CPU`; on a GPU never (the recipe's
    ``runtime.channels_last`` decides there)."""
    if torch.device(device).type != "cpu":
        return False
    if precision == "bf16":
        return True
    return any(architecture.startswith(family) for family in FP32_CHANNELS_LAST_ON_CPU)
