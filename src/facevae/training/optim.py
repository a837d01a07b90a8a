"""The optimizer a run steps with, its state across a resume, and the learning rate at each step."""
from __future__ import annotations

import torch
from torch import nn

from facevae.config import TrainConfig
from facevae.training.options import OPTIMIZERS, SCHEDULES


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device,
                   fused: bool | None = None) -> torch.optim.Optimizer:
    """fused (default: on CUDA) is one kernel per step and can skip a step on a device-side flag."""
    extra = {"fused": True} if (device.type == "cuda" if fused is None else fused) else {}
    return OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)


# how this run steps its optimizer: a checkpoint from another device or mode must not decide it
RUN_FLAGS = ("fused", "foreach", "capturable")


def load_optimizer_state(opt: torch.optim.Optimizer, saved: dict) -> None:
    """`opt.load_state_dict(saved)`, keeping this run's flags and every tensor in its parameter's layout.

    Checkpoints hold the moments contiguous (NCHW) and load_state_dict keeps that,
    while channels_last weights are NHWC: fused Adam needs weights, grads and moments
    with identical strides (CUDA raises, CPU silently computes garbage). Step counts
    go where a fresh optimizer with these flags keeps them (on the device when fused).
    """
    flags = [{k: g[k] for k in RUN_FLAGS if k in g} for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, own in zip(opt.param_groups, flags):
        group.update(own)
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            state = opt.state.get(p, {})
            for key, value in state.items():
                if key == "step" and torch.is_tensor(value):
                    state[key] = value.to(device=p.device if on_device else "cpu", dtype=torch.float32)
                elif torch.is_tensor(value) and value.shape == p.shape:
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def lr_factor(step: int, cfg: TrainConfig, total: int) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then the schedule's shape.

    A pure function of the step rather than a torch scheduler, so resuming needs no scheduler state.
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return SCHEDULES[cfg.schedule](step - cfg.warmup_steps, total - cfg.warmup_steps)
