"""The collectives the trainer needs under DistributedDataParallel (`facevae.training.launch` starts the ranks).

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them training runs in one
process and every collective here is a no-op.

Semantics (docs/scaling.md has the long form):
  * train.batch_size is the global batch, split evenly over the ranks; DDP
    averages the per-rank mean gradients, so a step equals a single-process step
    on the same global batch (exactly so without BatchNorm or with sync_bn).
  * Every rank draws the same epoch permutation and takes its share of each
    global batch (data.loader), so the step counter in a checkpoint means the
    same thing at any world size and a run resumes with a different one.
  * Only rank 0 writes files. Collectives are reached by every rank at the same
    steps: the skip-step flag each step, loss averages at log points, and a
    barrier after each epoch's evaluation (which runs on rank 0 with the bare
    model, never the DDP wrapper).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from facevae.errors import FacevaeError


def world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def active() -> bool:
    """A process group is up: under torchrun, with any number of processes (1 included)."""
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank; a no-op in a single process."""
    if active():
        dist.barrier()


def agree_ok(ok: torch.Tensor) -> torch.Tensor:
    """The step is good only when it is good on every rank (no host sync: the reduce is queued)."""
    if not active():
        return ok
    flag = ok.to(torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return flag.bool()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Average a small float tensor over ranks (log values); identity in one process."""
    if not active():
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return values / dist.get_world_size()


def rank_seed(seed: int, rank: int, step: int) -> int:
    """Seed of a rank's own RNG stream (posterior noise, dropout) from `step` on.

    Each rank needs different noise for its different images; deriving the seed from
    the step keeps a resumed DDP run deterministic without saving every rank's RNG.
    """
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63)


def check_batch(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise FacevaeError(f"train.batch_size {batch_size} is the global batch and must split evenly over "
                           f"{world_size} processes: use a multiple of {world_size}")
