"""Distributed helpers: one process per device under ``torchrun`` (nccl on GPU, gloo on CPU).

Everything here is a no-op in a single process, so the training and evaluation code
calls the same functions whether or not it was launched with ``torchrun``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

__all__ = ["setup_distributed", "cleanup_distributed", "is_distributed", "rank", "world_size", "is_main",
           "all_gather_objects", "all_reduce_sum", "all_reduce_max", "barrier", "local_rank", "broadcast_object"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def setup_distributed(device: torch.device) -> bool:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); return whether
    this call started it (so only the caller that started it destroys it)."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or is_distributed():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    logger.info("process group: backend %s, rank %d of %d", backend, rank(), world_size())
    return True


def cleanup_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, *, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (pickled; tensors travel on the CPU). The same object
    in one process. How a file only one node has (a checkpoint rank 0 wrote to a local
    ``output_dir``) reaches the others without a shared filesystem."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _all_reduce(values: list[float], op: "dist.ReduceOp | dist.ReduceOp.RedOpType") -> list[float]:
    if not is_distributed():
        return [float(v) for v in values]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=op)
    return t.tolist()


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64; the values themselves in one process)."""
    return _all_reduce(values, dist.ReduceOp.SUM)


def all_reduce_max(value: float) -> float:
    """The largest ``value`` of all ranks."""
    return _all_reduce([value], dist.ReduceOp.MAX)[0]
