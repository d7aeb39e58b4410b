"""DistributedDataParallel plumbing for ``torchrun``: who am I, and the few collectives we need.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (single- or multi-node alike); without them the run is
a single process and every function here is a no-op. NCCL on CUDA, gloo on CPU. Only rank 0 writes
files and logs; the others wait at barriers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun process group when launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across(info: DistInfo, values: torch.Tensor) -> torch.Tensor:
    """Average a small tensor of loss values over ranks (so every rank sees the same numbers)."""
    if not info.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / info.world


def average_gradients(info: DistInfo, module: torch.nn.Module) -> None:
    """All-reduce gradients by hand (the discriminator runs several forwards per backward)."""
    if not info.enabled:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(info.world)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
