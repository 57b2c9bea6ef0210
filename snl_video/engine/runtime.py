"""How the engine sets the CPU up before it trains or runs a model: flush-to-zero for denormals.

**Denormal (subnormal) floats** are the values between 0 and the smallest normal float
(``torch.finfo(torch.float32).tiny`` ≈ 1.2e-38). x86 CPUs handle them in microcode, tens of
times slower than ordinary floats, so a training step whose gradients have shrunk into that
range (a model that fits its batch: late epochs on a small dataset, fine-tuning that has
converged, benchmarks that repeat one batch) can take many times longer than the step
before it. Flush-to-zero (FTZ: results below ``tiny`` become 0) and denormals-are-zero (DAZ:
such inputs read as 0), which ``torch.set_flush_denormal(True)`` turns on, remove the cost;
the arithmetic then differs only for values below ~1e-38, which no loss, gradient step or
prediction of ours can see (measured: a demo run's metrics with and without, issue 22).

The two flags live in each thread's ``MXCSR`` register, and ``torch.set_flush_denormal``
sets only the calling thread's, while the work of an intra-op parallel op (convolutions,
matrix products, element-wise ops on large tensors) is split over OpenMP threads that do not
inherit the caller's flags. :func:`set_flush_denormal_all_threads` therefore runs the
setting inside one OpenMP parallel region (``GOMP_parallel`` of the OpenMP runtime PyTorch
loaded) so every thread of the pool gets it, and :func:`flush_denormal_active` checks the
result with a parallel op on denormal inputs (all of its outputs must be 0).

On by default wherever the engine runs on the CPU (train, eval, predict, features, study
cells). To turn it off (e.g. to study denormals): ``runtime.flush_denormal: false`` in a
config, or ``SNL_VIDEO_FLUSH_DENORMAL=0`` in the environment (any verb, with or without a
config); either one turns it off.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

__all__ = ["FLUSH_DENORMAL_ENV", "flush_denormal_wanted", "set_flush_denormal_all_threads", "flush_denormal_active",
           "setup_cpu_runtime"]

#: Environment variable that turns flush-to-zero off when set to 0/false/no/off.
FLUSH_DENORMAL_ENV = "SNL_VIDEO_FLUSH_DENORMAL"
_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_DENORMAL_BITS = 0x0020_0000  # float32 2**-128: exponent field 0, a nonzero mantissa


def flush_denormal_wanted(config_value: bool = True) -> bool:
    """Whether flush-to-zero should be on: ``config_value`` unless the environment turns it off.

    Raises:
        ValueError: ``SNL_VIDEO_FLUSH_DENORMAL`` holds something other than a yes/no word.
    """
    raw = os.environ.get(FLUSH_DENORMAL_ENV)
    if raw is None or raw.strip() == "":
        return config_value
    word = raw.strip().lower()
    if word in _FALSE:
        return False
    if word in _TRUE:
        return config_value
    raise ValueError(f"{FLUSH_DENORMAL_ENV}={raw!r}: expected 0/1 (or false/true, no/yes, off/on); "
                     f"unset it to keep the default (flush-to-zero on)")


def _openmp_library() -> Path | None:
    """The OpenMP runtime this process has loaded (libgomp / libiomp5), on Linux; PyTorch's own copy
    first when another package has loaded a second one."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return None
    found = []
    for line in maps.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and Path(fields[-1]).name.startswith(("libgomp", "libiomp5")):
            found.append(Path(fields[-1]))
    torch_dir = Path(torch.__file__).resolve().parent
    found.sort(key=lambda path: torch_dir not in path.resolve().parents)  # torch's copy first, stable otherwise
    return found[0] if found else None


def set_flush_denormal_all_threads(on: bool) -> bool:
    """Set flush-to-zero / denormals-are-zero on the calling thread and every intra-op thread.

    Returns ``False`` where the CPU has no such mode (``torch.set_flush_denormal`` refuses:
    not x86 with SSE3). Where the OpenMP runtime cannot be reached (not Linux, another
    threading backend) only the calling thread is set; :func:`flush_denormal_active` tells.
    Threads that PyTorch starts later (a larger ``torch.set_num_threads``) do not have it:
    call this again after changing the thread count.
    """
    if not torch.set_flush_denormal(on):
        return False
    library = _openmp_library() if torch.get_num_threads() > 1 else None
    if library is None:
        return True
    try:
        runtime = ctypes.CDLL(str(library))  # the copy already loaded: same thread pool
        parallel = runtime.GOMP_parallel
    except (OSError, AttributeError) as exc:
        logger.debug("flush-to-zero on the calling thread only: %s has no usable GOMP_parallel (%s)", library, exc)
        return True
    callback_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

    def in_each_thread(_: int | None) -> None:
        torch.set_flush_denormal(on)

    callback = callback_type(in_each_thread)
    parallel.argtypes = [callback_type, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    parallel.restype = None
    parallel(callback, None, torch.get_num_threads(), 0)
    return True


def flush_denormal_active() -> bool:
    """Whether denormals are flushed on every thread that a parallel CPU op uses.

    Multiplies a tensor of denormals large enough to be split over all intra-op threads
    and checks every product is exactly 0 (with denormals kept, each would be 2**-129).
    """
    size = max(1, torch.get_num_threads()) * 65536
    # Built from its bit pattern (2**-128): converting a Python float would itself be flushed.
    denormals = torch.full((size,), _DENORMAL_BITS, dtype=torch.int32).view(torch.float32)
    return bool((denormals * 0.5 == 0).all())


def setup_cpu_runtime(*, flush_denormal: bool = True) -> bool:
    """Set the CPU up for a training or inference job; return whether flush-to-zero is on.

    ``flush_denormal`` is the config's ``runtime.flush_denormal``; the environment variable
    ``SNL_VIDEO_FLUSH_DENORMAL=0`` turns it off as well (see :func:`flush_denormal_wanted`).
    Call it once at the start of a job, after the thread count is set: it costs one parallel
    region and one small check. It touches only CPU floating-point modes, so it is harmless
    before a CUDA job (whose host-side work still benefits).
    """
    wanted = flush_denormal_wanted(flush_denormal)
    if not set_flush_denormal_all_threads(wanted):
        if wanted:
            logger.info("flush-to-zero unavailable on this CPU (not x86 with SSE3): denormals stay")
        return False
    active = flush_denormal_active()
    if wanted and not active:
        logger.warning("flush-to-zero is set on this thread but not on every CPU thread: training steps may slow "
                       "down once gradients are tiny (denormals); torch.set_num_threads(1) avoids it")
    elif not wanted:
        logger.info("flush-to-zero off (%s): CPU steps may slow down once gradients are tiny (denormals)",
                    "runtime.flush_denormal=false" if not flush_denormal else f"{FLUSH_DENORMAL_ENV}=0")
    else:
        logger.debug("flush-to-zero on for %d CPU thread(s)", torch.get_num_threads())
    return wanted and active
