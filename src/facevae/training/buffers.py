"""BatchNorm statistics as they were before a step, put back when the step is skipped as non-finite."""
from __future__ import annotations

import torch
from torch import nn


class BufferGuard:
    """Buffers (BatchNorm statistics and counts) as they were before a step, put back when it is skipped.

    A non-finite forward would otherwise leave NaN running statistics behind, which
    ruin evaluation and sampling although the weights were protected. One flat copy
    per dtype keeps this at a few kernels a step.
    """

    def __init__(self, model: nn.Module):
        self.groups: dict[torch.dtype, list[torch.Tensor]] = {}
        for b in model.buffers():
            self.groups.setdefault(b.dtype, []).append(b)
        self.saved: dict[torch.dtype, torch.Tensor] = {}

    def snapshot(self) -> None:
        self.saved = {dt: _flat(bufs) for dt, bufs in self.groups.items()}

    @torch.no_grad()
    def restore(self, where: torch.Tensor | None = None) -> None:
        """Put the snapshot back: always, or (no sync) only where the 0-dim bool `where` is true."""
        for dt, bufs in self.groups.items():
            if dt not in self.saved:
                continue
            flat = self.saved[dt]
            if where is not None:  # torch.where, not arithmetic: NaN * 0 is still NaN
                flat = torch.where(where, flat, _flat(bufs))
            parts = flat.split([b.numel() for b in bufs])
            torch._foreach_copy_(bufs, [f.view_as(b) for f, b in zip(parts, bufs)])


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])
