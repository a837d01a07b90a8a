"""Batches from a uint8 image tensor, sliced on the device that holds it.

On CUDA the whole uint8 dataset moves to the GPU when it fits, so a step does
no host decoding or copying; on CPU it sits in RAM. The epoch order and the
flips come from generators seeded by (seed, epoch), so any step can be resumed
exactly without saving loader state.
"""
from __future__ import annotations

import numpy as np
import torch


def place_images(images: np.ndarray, device: torch.device, max_fraction: float = 0.6) -> torch.Tensor:
    """Put the uint8 (N, 3, H, W) array on `device` when it fits, else keep it in host RAM."""
    host = torch.from_numpy(np.ascontiguousarray(images))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if host.numel() < max_fraction * free:
            return host.to(device)
        return host.pin_memory()
    return host


class BatchLoader:
    """Shuffled float batches in [0, 1]; each DDP rank takes its own shard of every epoch."""

    def __init__(
        self,
        images: torch.Tensor,
        batch_size: int,
        device: torch.device,
        *,
        shuffle: bool = True,
        flip: bool = False,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.images, self.batch_size, self.device = images, batch_size, device
        self.shuffle, self.flip, self.seed, self.drop_last = shuffle, flip, seed, drop_last
        self.rank, self.world_size = rank, world_size
        n_per_rank = len(images) // world_size
        if drop_last:
            self.steps_per_epoch = n_per_rank // batch_size
        else:
            self.steps_per_epoch = -(-n_per_rank // batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(images)} images are fewer than one batch of {batch_size} per rank")

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _order(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.images)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        flips = torch.rand(n, generator=g) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        per_rank = n // self.world_size
        shard = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
        return order[shard], flips[order[shard]]

    def epoch(self, epoch: int, start: int = 0):
        """Yield batches of epoch `epoch`, skipping the first `start` (for resume)."""
        order, flips = self._order(epoch)
        order = order.to(self.images.device)
        flips = flips.to(self.device) if self.flip else None
        for b in range(start, self.steps_per_epoch):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            batch = self.images[order[sl]].to(self.device, non_blocking=True)
            yield to_float(batch, None if flips is None else flips[sl])


def to_float(batch: torch.Tensor, flips: torch.Tensor | None = None) -> torch.Tensor:
    x = batch.float().div_(255.0)
    if flips is not None:  # no .any() check: it would sync the GPU every step
        x = torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)
    return x


def iterate_fixed(images: torch.Tensor, batch_size: int, device: torch.device, limit: int = 0):
    """In-order batches for evaluation; `limit` caps the number of batches (0 = all)."""
    n_batches = -(-len(images) // batch_size)
    if limit:
        n_batches = min(n_batches, limit)
    for b in range(n_batches):
        yield to_float(images[b * batch_size:(b + 1) * batch_size].to(device, non_blocking=True))
