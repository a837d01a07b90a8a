"""Start training in this process, or as one rank of a `torchrun ... -m facevae train` job.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them training runs in one
process. NCCL on GPUs (one process per GPU, cuda:LOCAL_RANK), gloo on CPU. The
collectives the trainer needs live in `facevae.training.distributed`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.training.distributed import check_batch, world
from facevae.modelfiles.device import resolve_device
from facevae.training.run import train
from facevae.training.trainer import TrainResult


def train_maybe_distributed(data: str | Path, out: str | Path, cfg: RunConfig, *, resume: bool, device: str,
                            progress: bool = True, overwrite: bool = False) -> TrainResult | None:
    """Train in this process, or as one rank of a torchrun job; rank 0 returns the result."""
    rank, local_rank, world_size = world()
    # under torchrun even one process runs DDP (the path of N processes, so it can be checked on one GPU)
    if "RANK" not in os.environ:
        return train(data, out, cfg, resume=resume, overwrite=overwrite, device=device, progress=progress)
    check_batch(cfg.train.batch_size, world_size)
    dev = resolve_device(device)
    kwargs = {}
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise FacevaeError(f"local rank {local_rank} has no GPU (this node has {torch.cuda.device_count()}): "
                               "start at most one process per GPU (--nproc_per_node)")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        kwargs["device_id"] = dev  # binds NCCL to this GPU (barriers included)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", **kwargs)
    try:
        result = train(data, out, cfg, resume=resume, overwrite=overwrite, device=str(dev), progress=progress,
                       rank=rank, world_size=world_size)
    finally:
        dist.destroy_process_group()
    return result if rank == 0 else None
