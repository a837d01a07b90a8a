"""Exponential moving average of the weights (and of BatchNorm statistics).

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

    def decay_at(self, step: int) -> float:
        # warm-up: early on the average would be dominated by the random initial weights
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        torch._foreach_lerp_(list(self.averaged.parameters()), [p.detach() for p in model.parameters()], weight)
        # BatchNorm running statistics are averaged too: statistics of the live weights do not fit the
        # averaged ones; integer counters are copied
        ema_f, src_f, ema_i, src_i = [], [], [], []
        for b_ema, b in zip(self.averaged.buffers(), model.buffers()):
            (ema_f if b.is_floating_point() else ema_i).append(b_ema)
            (src_f if b.is_floating_point() else src_i).append(b)
        if ema_f:
            torch._foreach_lerp_(ema_f, src_f, weight)
        if ema_i:
            torch._foreach_copy_(ema_i, src_i)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.averaged.load_state_dict(state)
