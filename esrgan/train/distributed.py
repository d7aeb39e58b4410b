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


def gather_batch(info: DistInfo, batch: torch.Tensor) -> torch.Tensor:
    """The global batch: every rank's share concatenated along dim 0, gradients flowing back to each owner.

    The GAN stage runs the discriminator on the global batch so that its batch-norm statistics and the
    RaGAN batch means are those of one process with the whole batch (torch's SyncBatchNorm would cover
    the former but runs on GPUs only). The backward of ``torch.distributed.nn.all_gather`` sums every
    rank's gradient for each share, which DDP's averaging then turns into the one-process gradient.
    """
    if not info.enabled:
        return batch
    from torch.distributed.nn import all_gather

    return torch.cat(all_gather(batch.contiguous()), dim=0)


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
