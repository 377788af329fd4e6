"""Data-parallel training across processes (``torchrun --nproc_per_node=N -m attnlab ...``).

torchrun starts N copies of the program with RANK, WORLD_SIZE and LOCAL_RANK set. Each process
builds the same batches (same seed), keeps its share of every batch (``shard``), and
DistributedDataParallel averages the gradients, so N processes take the same steps as one
process on the same global batch (Li et al. 2020, "PyTorch Distributed"). Every process
validates (same weights, same decisions); only rank 0 logs and writes. Rank 0's clock and
signals decide for all (``sync_from_main``). Backends: gloo on CPU, nccl on GPU.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> torch.device:
    """Join the process group started by torchrun (no-op for a single process).

    Returns the device this process should use (its own GPU under nccl).
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger("attnlab").setLevel(logging.WARNING)  # rank 0 speaks for all
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return torch.device("cuda", local)
    dist.init_process_group("gloo")
    return device


def shard(batch: Sequence[Any] | torch.Tensor) -> Sequence[Any] | torch.Tensor:
    """This process's share of a batch of example indices: every world_size-th, from its rank."""
    n = world_size()
    return batch if n == 1 else batch[rank() :: n]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def sync_from_main(*values: float) -> tuple[float, ...]:
    """Rank 0's values on every rank (its elapsed time, its stop signal), so that all processes
    follow one learning-rate schedule and stop at the same step."""
    if world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, src=0)
    return tuple(t.tolist())
