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

**Scoped to a verb.** :func:`flush_denormal` is a context manager that each verb enters for
the duration of its work (train, eval, predict, features, explain, export, spectrum, study
cells): on entry it records, per thread, whether the calling thread and each OpenMP worker
thread flush, turns flushing on (or off) on all of them, and on exit puts every one of those
threads back as it was, so a notebook that calls ``snl_video.train(...)`` computes with IEEE
subnormals again afterwards. Nested verbs (a study cell that trains, then evaluates) restore
in order: the inner exit brings back the outer verb's state, not the process's. Worker
threads the verb itself started (a larger ``torch.set_num_threads`` inside it) inherited its
setting from the calling thread; they get the calling thread's earlier state back.

On by default. To turn it off (e.g. to study denormals): ``runtime.flush_denormal: false`` in
a config, or ``SNL_VIDEO_FLUSH_DENORMAL=0`` in the environment (any verb, with or without a
config); either one turns it off, and the verb then runs with subnormals kept even where the
caller had flushing on.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import torch

logger = logging.getLogger(__name__)

__all__ = ["FLUSH_DENORMAL_ENV", "flush_denormal", "flush_denormal_wanted", "set_flush_denormal_all_threads",
           "flush_denormal_active", "thread_flushes_denormals", "on_each_thread"]

#: Environment variable that turns flush-to-zero off when set to 0/false/no/off.
FLUSH_DENORMAL_ENV = "SNL_VIDEO_FLUSH_DENORMAL"
_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_DENORMAL_BITS = 0x0020_0000  # float32 2**-128: exponent field 0, a nonzero mantissa
# float64 2**-1032 from its bits (exponent field 0): a literal would go through float parsing
_DENORMAL_DOUBLE: float = struct.unpack("<d", struct.pack("<Q", 1 << 42))[0]
_T = TypeVar("_T")


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


def on_each_thread(action: Callable[[], _T], *, threads: int | None = None) -> dict[int, _T]:
    """Run ``action()`` once on the calling thread and once on each thread of its OpenMP pool.

    Returns ``{thread id: result}`` (ids from :func:`threading.get_ident`; the calling
    thread's is ``threading.get_ident()`` here). ``threads``: the size of the team (default
    ``torch.get_num_threads()``; the pool's threads are reused in the same order by every
    team, so a team of the intra-op thread count reaches every thread an op runs on). The
    team is one OpenMP parallel region (``GOMP_parallel`` of the runtime PyTorch loaded);
    where none can be reached (not Linux, another threading backend) only the calling thread
    runs ``action``. ``action`` must not raise (a callback's exception cannot cross the C
    runtime): it runs with the GIL, one thread at a time.
    """
    team = torch.get_num_threads() if threads is None else threads
    library = _openmp_library() if team > 1 else None
    if library is None:
        return {threading.get_ident(): action()}
    try:
        runtime = ctypes.CDLL(str(library))  # the copy already loaded: same thread pool
        parallel = runtime.GOMP_parallel
    except (OSError, AttributeError) as exc:
        logger.debug("calling thread only: %s has no usable GOMP_parallel (%s)", library, exc)
        return {threading.get_ident(): action()}
    results: dict[int, _T] = {}
    callback_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

    def in_each_thread(_: int | None) -> None:
        results[threading.get_ident()] = action()

    callback = callback_type(in_each_thread)
    parallel.argtypes = [callback_type, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    parallel.restype = None
    parallel(callback, None, team, 0)
    return results


def thread_flushes_denormals() -> bool:
    """Whether the *calling* thread flushes denormals (FTZ or DAZ set in its MXCSR).

    Python float arithmetic runs on the SSE unit whose MXCSR holds the flags, so a denormal
    double times 0.5 is exactly 0 when either flag is set and ``2**-1033`` when neither is.
    """
    return _DENORMAL_DOUBLE * 0.5 == 0.0


def set_flush_denormal_all_threads(on: bool) -> bool:
    """Set flush-to-zero / denormals-are-zero on the calling thread and every intra-op thread.

    Returns ``False`` where the CPU has no such mode (``torch.set_flush_denormal`` refuses:
    not x86 with SSE3). Where the OpenMP runtime cannot be reached (not Linux, another
    threading backend) only the calling thread is set; :func:`flush_denormal_active` tells.
    Threads that PyTorch starts later (a larger ``torch.set_num_threads``) inherit the calling
    thread's setting; threads of an earlier, larger pool that sit idle keep theirs: call this
    again after changing the thread count. This changes the state for good: the engine uses
    :func:`flush_denormal`, which restores it.
    """
    if not torch.set_flush_denormal(on):
        return False
    on_each_thread(lambda: torch.set_flush_denormal(on))
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


@contextmanager
def flush_denormal(config_value: bool = True) -> Iterator[bool]:
    """Flush denormals on every CPU thread for the duration of a ``with`` block, then restore.

    ``config_value`` is the recipe's ``runtime.flush_denormal``;
    ``SNL_VIDEO_FLUSH_DENORMAL=0`` turns flushing off as well (:func:`flush_denormal_wanted`).
    Yields whether flushing is on inside the block (False where it is not wanted, and where
    the CPU has no such mode: not x86 with SSE3). On exit, whether the block ended or raised,
    the calling thread and each OpenMP worker thread get back the setting they had on entry,
    so nested blocks restore in order (see the module docstring). Call it after the verb has
    set its thread count. Costs two parallel regions and one small check.
    """
    wanted = flush_denormal_wanted(config_value)
    threads = torch.get_num_threads()
    before = on_each_thread(thread_flushes_denormals, threads=threads)
    caller_before = before.get(threading.get_ident(), thread_flushes_denormals())
    if not torch.set_flush_denormal(caller_before):  # asks whether the mode exists, changes nothing
        if wanted:
            logger.info("flush-to-zero unavailable on this CPU (not x86 with SSE3): denormals stay")
        yield False
        return
    try:
        set_flush_denormal_all_threads(wanted)
        active = flush_denormal_active()
        if wanted and not active:
            logger.warning("flush-to-zero is set on this thread but not on every CPU thread: training steps may slow "
                           "down once gradients are tiny (denormals); torch.set_num_threads(1) avoids it")
        elif not wanted:
            logger.info("flush-to-zero off (%s): CPU steps may slow down once gradients are tiny (denormals)",
                        "runtime.flush_denormal=false" if not config_value else f"{FLUSH_DENORMAL_ENV}=0")
        else:
            logger.debug("flush-to-zero on for %d CPU thread(s) until the verb returns", threads)
        yield wanted and active
    finally:
        # a thread seen on entry gets its own state back; one started inside (a larger pool)
        # inherited the caller's setting there and gets the caller's earlier state
        def restore() -> None:
            torch.set_flush_denormal(before.get(threading.get_ident(), caller_before))

        on_each_thread(restore, threads=max(threads, torch.get_num_threads()))
