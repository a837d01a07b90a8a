"""Exponential moving average of the weights.

Own code rather than torch.optim.swa_utils.AveragedModel: one fused
`_foreach_lerp_` per step keeps it under a percent of a step on GPU.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.averaged = copy.deepcopy(model).eval()
        for p in self.averaged.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = [p for p in self.averaged.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - self.decay)
        # buffers (BatchNorm statistics) are copied: averaging running stats buys nothing
        torch._foreach_copy_(list(self.averaged.buffers()), list(model.buffers()))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.averaged.load_state_dict(state)
