"""Diagonal Gaussian posterior q(z|x), as diffusers' autoencoders return it."""
from __future__ import annotations

import math

import torch


class DiagonalGaussian:
    """N(mean, exp(logvar)); `deterministic=True` makes it a point mass (plain autoencoder)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor | None = None, deterministic: bool = False):
        self.mean = mean
        self.deterministic = deterministic or logvar is None
        if self.deterministic:
            logvar = torch.full_like(mean, -float("inf"))
        # mean and logvar come in float32 (VAE.encode): there exp() is finite up to logvar 88; the
        # clamp bounds the noise scale and the KL when an early or bad step throws logvar far out
        self.logvar = logvar if self.deterministic else logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> torch.Tensor:
        return torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw z = mean + std * eps, differentiable in mean and logvar."""
        if self.deterministic:
            return self.mean
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl_per_dim(self) -> torch.Tensor:
        """KL(q || N(0, I)) for each latent dimension, shape (batch, latent)."""
        if self.deterministic:
            return torch.zeros_like(self.mean)
        # expm1: exp(logvar) - 1 without the cancellation that makes an inactive unit's KL noise
        return 0.5 * (self.mean.pow(2) + torch.expm1(self.logvar) - self.logvar)

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per example, in nats."""
        return self.kl_per_dim().sum(dim=1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over latent dimensions; z may carry extra leading sample dims."""
        return (-0.5 * ((z - self.mean) ** 2 / self.var + self.logvar + math.log(2 * math.pi))).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (z.pow(2) + math.log(2 * math.pi))).sum(-1)
