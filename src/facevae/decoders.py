"""The decoder distributions p(x|z), one object per `loss.recon`.

Each gives the per-pixel negative log-likelihood that training minimises (pixels
as floats in [0, 1]) and the log-probability of each 8-bit level that the
likelihood bounds and bits/dim use (`facevae.metrics.likelihood` explains the
discretisation). Both read the decoder's logits and, for the Gaussian and
Laplace, its log scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from facevae.errors import FacevaeError
from facevae.models.posterior import normal_log_density

LEVELS = 256
LN2 = math.log(2.0)
_F64 = torch.float64


@dataclass(frozen=True)
class DecoderDistribution:
    """p(x|z) for one loss.recon: `nll` (training), `discrete_log_prob` (8-bit levels), its report name."""

    nll: Callable[..., torch.Tensor]  # (x in [0, 1], logits, log_scale) -> per-pixel nats
    discrete_log_prob: Callable[..., torch.Tensor]  # (uint8 x, logits, log_scale) -> per-sub-pixel float64 log P
    description: str


# ----------------------------------------------------------------------------- training NLL (continuous)

def _bernoulli_nll(x: torch.Tensor, logits: torch.Tensor, log_scale: torch.Tensor | float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def _gaussian_nll(x: torch.Tensor, logits: torch.Tensor, log_scale: torch.Tensor | float) -> torch.Tensor:
    mean = torch.sigmoid(logits)
    log_scale = torch.as_tensor(log_scale, dtype=mean.dtype, device=mean.device)
    return -normal_log_density(x, mean, 2 * log_scale)


def _laplace_nll(x: torch.Tensor, logits: torch.Tensor, log_scale: torch.Tensor | float) -> torch.Tensor:
    mean = torch.sigmoid(logits)
    log_scale = torch.as_tensor(log_scale, dtype=mean.dtype, device=mean.device)
    return (x - mean).abs() * torch.exp(-log_scale) + log_scale + math.log(2.0)


# ----------------------------------------------------------------------------- 8-bit levels (discrete)

def bin_edges(x8: torch.Tensor, open_ends: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) float64 bin edges in [0, 1] units for uint8 levels; edge bins open to +-inf or closed at 0/1."""
    k = x8.to(_F64)
    lo, hi = (k - 0.5) / 255.0, (k + 0.5) / 255.0
    low_end, high_end = (-math.inf, math.inf) if open_ends else (0.0, 1.0)
    lo = torch.where(x8 == 0, torch.full_like(lo, low_end), lo)
    hi = torch.where(x8 == LEVELS - 1, torch.full_like(hi, high_end), hi)
    return lo, hi


def log1mexp(t: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-t)) for t >= 0, accurate near 0 and for large t (Maechler, 2012)."""
    return torch.where(t < LN2, torch.log(-torch.expm1(-t)), torch.log1p(-torch.exp(-t)))


def _log_symmetric_mass(log_cdf: Callable[[torch.Tensor], torch.Tensor], lo: torch.Tensor, hi: torch.Tensor,
                        upper: torch.Tensor) -> torch.Tensor:
    """log(F(hi) - F(lo)) for a standardised symmetric F, from the tail the bin lies in.

    Bins above the centre are mirrored (F(hi) - F(lo) = F(-lo) - F(-hi)), so the
    two CDF values are always the small ones and their difference does not cancel.
    """
    a, b = torch.where(upper, -hi, lo), torch.where(upper, -lo, hi)
    c_b = log_cdf(b)
    return c_b + log1mexp(c_b - log_cdf(a))


def _standardised_bins(x8: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor | float):
    mean = mean.to(_F64)
    inv = torch.exp(-torch.as_tensor(log_scale, dtype=_F64, device=mean.device))
    lo, hi = bin_edges(x8)
    return (lo - mean) * inv, (hi - mean) * inv, x8.to(_F64) / 255.0 > mean


def gaussian_bin_log_prob(x8: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor | float) -> torch.Tensor:
    """log P(level) under N(mean, sigma^2) on [0, 1] units, integrated over the level's bin."""
    return _log_symmetric_mass(torch.special.log_ndtr, *_standardised_bins(x8, mean, log_scale))


def _laplace_log_cdf(z: torch.Tensor) -> torch.Tensor:
    # F = exp(z) / 2 below the median, 1 - exp(-z) / 2 above
    return torch.where(z < 0, z - LN2, torch.log1p(-0.5 * torch.exp(-z.clamp_min(0))))


def laplace_bin_log_prob(x8: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor | float) -> torch.Tensor:
    """log P(level) under Laplace(mean, b) on [0, 1] units, integrated over the level's bin."""
    return _log_symmetric_mass(_laplace_log_cdf, *_standardised_bins(x8, mean, log_scale))


def continuous_bernoulli_bin_log_prob(x8: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log P(level) under the continuous Bernoulli with these logits, integrated over the level's bin.

    The density is eta exp(eta u) / (exp(eta) - 1) on [0, 1], so a bin [a, b] holds
    (exp(eta b) - exp(eta a)) / (exp(eta) - 1). For eta < 0 the mirror image u -> 1 - u
    with |eta| is used, so every exponent is <= 0 and nothing overflows.
    """
    eta = logits.to(_F64)
    lo, hi = bin_edges(x8, open_ends=False)
    neg = eta < 0
    a, b = torch.where(neg, 1.0 - hi, lo), torch.where(neg, 1.0 - lo, hi)
    # |eta| -> 0 is the uniform density; the floor keeps 0/0 away (error ~1e-12 in the log)
    r = eta.abs().clamp_min(1e-12)
    return r * (b - 1.0) + log1mexp(r * (b - a)) - log1mexp(r)


def _gaussian(x8, logits, log_scale):
    return gaussian_bin_log_prob(x8, torch.sigmoid(logits.to(_F64)), log_scale)


def _laplace(x8, logits, log_scale):
    return laplace_bin_log_prob(x8, torch.sigmoid(logits.to(_F64)), log_scale)


def _bernoulli(x8, logits, log_scale):
    return continuous_bernoulli_bin_log_prob(x8, logits)


# loss.recon -> its decoder distribution; "mse" is the Gaussian, "l1" the Laplace
RECON_LOSSES: dict[str, DecoderDistribution] = {
    "bce": DecoderDistribution(_bernoulli_nll, _bernoulli,
                               "discretised continuous Bernoulli (256 bins on [0, 1]) of the BCE decoder's logits"),
    "mse": DecoderDistribution(_gaussian_nll, _gaussian, "discretised Gaussian (256 bins, open edge bins)"),
    "l1": DecoderDistribution(_laplace_nll, _laplace, "discretised Laplace (256 bins, open edge bins)"),
}


def decoder_distribution(recon: str) -> DecoderDistribution:
    try:
        return RECON_LOSSES[recon]
    except KeyError:
        raise FacevaeError(f"no decoder distribution for loss.recon={recon!r}; "
                           f"known: {', '.join(RECON_LOSSES)}") from None
