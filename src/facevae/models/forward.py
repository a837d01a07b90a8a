"""A net over a whole set, in row batches: one loop for every encode, decode and reconstruction pass."""
from __future__ import annotations

from typing import Callable

import torch

# rows per forward pass: large enough to keep a GPU busy, small enough for 128 px images in a few GB
FORWARD_BATCH = 256


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor, device: torch.device | str,
            batch_size: int = FORWARD_BATCH) -> torch.Tensor:
    """fn applied to row batches of `rows` moved to `device`; the results concatenated on the CPU."""
    if len(rows) == 0:
        return fn(rows.to(device)).cpu()
    return torch.cat([fn(rows[i:i + batch_size].to(device)).cpu() for i in range(0, len(rows), batch_size)])
