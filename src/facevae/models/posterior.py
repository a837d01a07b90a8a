"""Diagonal Gaussians: the posterior q(z|x) (as diffusers' autoencoders return it) and the one
Gaussian log-density and KL that the losses, latent statistics, samplers and likelihood bounds share."""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def normal_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, exp(logvar)), broadcasting like arithmetic does."""
    return -0.5 * ((x - mean).square() * torch.exp(-logvar) + logvar + LOG_2PI)


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean, exp(logvar)) || N(0, 1)) in nats."""
    # expm1: exp(logvar) - 1 without the cancellation that makes an inactive unit's KL noise
    return 0.5 * (mean.square() + torch.expm1(logvar) - logvar)


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

    def double(self) -> DiagonalGaussian:
        """The same distribution in float64: sums of many log-density terms (the IWAE bound) need it."""
        return DiagonalGaussian(self.mean.double(), self.logvar.double(), self.deterministic)

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
        return kl_to_standard_normal(self.mean, self.logvar)

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per example, in nats."""
        return self.kl_per_dim().sum(dim=1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over latent dimensions; z may carry extra leading sample dims."""
        return normal_log_density(z, self.mean, self.logvar).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    return normal_log_density(z, zero, zero).sum(-1)
