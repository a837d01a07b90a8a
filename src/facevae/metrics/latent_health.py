"""Latent health: active units, KL per dimension, and aggregate posterior versus prior.

Inputs are the posterior means mu_n and log-variances log s2_n of N images
(N x L), as `facevae.data.encode.encode_images` returns them. Activity and KL
per dimension come from the latent toolkit (`facevae.latent.stats`); this
module adds their summary and the aggregate-posterior mismatch.

* Active units (Burda et al., 2016): dimension d is active when
  A_d = Cov_x(E[z_d | x]) = Var_n(mu_n,d) > 0.01 (sample variance, 1/(N-1)).
* KL per dimension: KL_d = mean_n 0.5 (mu_n,d^2 + s2_n,d - 1 - log s2_n,d), the
  average KL(q(z_d|x) || N(0, 1)); reported as the total sum_d KL_d (the
  model's average KL per image), the mean over dimensions, the maximum, and the
  number of dimensions with KL_d > 0.01 nats.
* Aggregate posterior mismatch: the aggregate posterior q(z) = mean_n q(z|x_n)
  has mean m = mean_n mu_n and covariance S = Cov_n(mu_n) + diag(mean_n s2_n)
  (law of total covariance with 1/N moments: the exact moments of the
  mixture). We report KL(N(m, S) || N(0, I)) = 0.5 (tr S + m^T m - L - log det S),
  the KL of the moment-matched Gaussian: 0 exactly when the aggregate
  posterior has the prior's mean and covariance. It summarises the mismatch
  that makes prior samples worse than reconstructions; it is not the KL of the
  mixture itself (no closed form). For a deterministic encoder S = Cov_n(mu_n).
"""
from __future__ import annotations

import torch

from facevae.errors import FacevaeError
from facevae.latent.stats import ACTIVE_THRESHOLD, kl_per_dim, latent_activity

KL_THRESHOLD = 0.01  # nats per dimension

# What each KL figure measures, in the words every command prints it with (evaluate, latents):
# the per-image figure is many times the aggregate one, so a bare "KL" invites comparing them.
PER_IMAGE_KL = "the mean over images of KL(q(z|x) || p(z)), summed over dimensions"
AGGREGATE_KL = "KL(N(m, S) || N(0, I)) for the mean m and covariance S of the aggregate posterior q(z)"


def aggregate_moments(means: torch.Tensor, logvars: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, S): mean and covariance of the aggregate posterior mean_n N(mu_n, diag s2_n); logvars None = point masses."""
    if means.ndim != 2 or len(means) < 2:
        raise FacevaeError(f"aggregate moments need N x L posterior means with N >= 2, got {tuple(means.shape)}")
    mu = means.detach().to("cpu", torch.float64)
    m = mu.mean(0)
    centred = mu - m
    cov = centred.T @ centred / len(mu)
    if logvars is not None:
        cov = cov + torch.diag(logvars.detach().to("cpu", torch.float64).exp().mean(0))
    return m, cov


def gaussian_kl_to_standard(m: torch.Tensor, cov: torch.Tensor) -> float:
    """KL(N(m, cov) || N(0, I)) in nats; inf when cov is singular."""
    sign, logdet = torch.linalg.slogdet(cov)
    if sign <= 0:
        return float("inf")
    return float(0.5 * (torch.trace(cov) + m @ m - len(m) - logdet))


def aggregate_posterior_kl(means: torch.Tensor, logvars: torch.Tensor | None) -> float:
    return gaussian_kl_to_standard(*aggregate_moments(means, logvars))


def latent_health(means: torch.Tensor, logvars: torch.Tensor, deterministic: bool = False) -> dict:
    """Every latent-health figure as JSON-able numbers; KL figures are None for a deterministic encoder."""
    activity = latent_activity(means)
    out = {
        "images": len(means), "latent_dim": int(means.shape[1]),
        "active_units": int((activity > ACTIVE_THRESHOLD).sum()), "active_threshold": ACTIVE_THRESHOLD,
        "activity_per_dim": activity.tolist(),
    }
    if deterministic:
        return {**out, "kl": None, "kl_per_dim": None, "aggregate_kl": aggregate_posterior_kl(means, None)}
    kl = kl_per_dim(means, logvars)
    return {
        **out,
        "kl": {"total": float(kl.sum()), "mean_per_dim": float(kl.mean()), "max": float(kl.max()),
               "dims_above": int((kl > KL_THRESHOLD).sum()), "threshold": KL_THRESHOLD},
        "kl_per_dim": kl.tolist(),
        "aggregate_kl": aggregate_posterior_kl(means, logvars),
    }
