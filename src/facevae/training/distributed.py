"""DistributedDataParallel launch glue for `torchrun ... -m facevae train`.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them training runs in
one process. NCCL on GPUs, gloo on CPU. Only rank 0 writes files.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from facevae.config import RunConfig
from facevae.training.trainer import TrainResult


def world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def train_maybe_distributed(data: str | Path, out: str | Path, cfg: RunConfig, *, resume: bool, device: str,
                            progress: bool = True) -> TrainResult | None:
    from facevae.training.run import resolve_device, train

    rank, local_rank, world_size = world()
    if world_size == 1:
        return train(data, out, cfg, resume=resume, device=device, progress=progress)
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        result = train(data, out, cfg, resume=resume, device=str(dev), progress=progress,
                       rank=rank, world_size=world_size)
    finally:
        dist.destroy_process_group()
    return result if rank == 0 else None
