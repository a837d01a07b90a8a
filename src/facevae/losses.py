"""VAE objective: reconstruction negative log-likelihood plus a weighted KL term.

All terms are per-image sums over pixels (or latent dimensions), averaged over
the batch, so their values are nats per image and the ELBO reads directly off
`recon + kl` when beta = 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from facevae.config import LossConfig
from facevae.decoders import RECON_LOSSES
from facevae.models.vae import VAEOutput


@dataclass
class LossTerms:
    total: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    beta: float

    def detached(self) -> dict[str, torch.Tensor]:
        return {"total": self.total.detach(), "recon": self.recon.detach(), "kl": self.kl.detach()}


def recon_nll(x: torch.Tensor, out: VAEOutput, cfg: LossConfig) -> torch.Tensor:
    """Reconstruction negative log-likelihood per image (nats), shape (batch,)."""
    log_scale = out.log_sigma if out.log_sigma is not None else math.log(cfg.sigma)
    per_pixel = RECON_LOSSES[cfg.recon].nll(x.float(), out.logits.float(), log_scale)
    return per_pixel.flatten(1).sum(1)


def beta_at(step: int, cfg: LossConfig) -> float:
    """Linear KL warm-up from 0 to cfg.beta over kl_warmup_steps."""
    if cfg.kl_warmup_steps <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, step / cfg.kl_warmup_steps)


def kl_term(out: VAEOutput, cfg: LossConfig) -> torch.Tensor:
    """KL per image; with free bits, each dimension's batch-mean KL is floored at free_bits nats."""
    per_dim = out.posterior.kl_per_dim().float()
    if cfg.free_bits > 0:
        return per_dim.mean(0).clamp_min(cfg.free_bits).sum().expand(per_dim.shape[0])
    return per_dim.sum(1)


def vae_loss(x: torch.Tensor, out: VAEOutput, *, cfg: LossConfig, step: int = 0) -> LossTerms:
    """Negative ELBO with beta weighting; for a plain autoencoder KL is zero."""
    recon = recon_nll(x, out, cfg).mean()
    kl = kl_term(out, cfg).mean()
    beta = beta_at(step, cfg)
    return LossTerms(total=recon + beta * kl, recon=recon, kl=kl, beta=beta)
