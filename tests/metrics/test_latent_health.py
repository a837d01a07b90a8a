"""Latent health (metrics/latent_health.py): active units, KL per dimension, the aggregate-posterior KL."""
from __future__ import annotations

import math

import pytest
import torch

from facevae.metrics.latent_health import aggregate_posterior_kl, latent_health


def test_aggregate_kl_is_zero_when_moments_match_the_prior():
    # Hadamard sign patterns: zero-mean, uncorrelated dims of population variance 1/2, plus posterior
    # variance 1/2: the aggregate moments are exactly N(0, I)
    signs = torch.tensor([[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], dtype=torch.float64)
    means = math.sqrt(0.5) * signs
    logvars = torch.full_like(means, math.log(0.5))
    assert aggregate_posterior_kl(means, logvars) == pytest.approx(0.0, abs=1e-12)


def test_aggregate_kl_closed_form_for_a_wide_posterior():
    # means all 0, variances 2: S = 2I, KL = L/2 (2 - 1 - ln 2)
    means, logvars = torch.zeros(5, 4), torch.full((5, 4), math.log(2.0))
    assert aggregate_posterior_kl(means, logvars) == pytest.approx(4 * 0.5 * (1 - math.log(2)), rel=1e-6)


def test_latent_health_counts_active_units_and_kl():
    g = torch.Generator().manual_seed(0)
    n = 400
    means = torch.cat([torch.randn(n, 2, generator=g), 0.01 * torch.randn(n, 3, generator=g)], dim=1)
    logvars = torch.cat([torch.full((n, 2), -3.0), torch.zeros(n, 3)], dim=1)
    h = latent_health(means, logvars)
    assert h["active_units"] == 2 and h["latent_dim"] == 5 and h["images"] == n
    kl = h["kl"]
    # the three collapsed dims sit at the prior: KL ~ 0.5 * 1e-4 each
    assert kl["dims_above"] == 2
    per_dim = torch.tensor(h["kl_per_dim"], dtype=torch.float64)
    expected = 0.5 * (means.double().pow(2).mean(0) + logvars.double().exp().mean(0) - 1 - logvars.double().mean(0))
    torch.testing.assert_close(per_dim, expected)
    assert kl["total"] == pytest.approx(float(expected.sum())) and kl["max"] == pytest.approx(float(expected.max()))
    ae = latent_health(means, torch.full_like(means, -math.inf), deterministic=True)
    assert ae["kl"] is None and ae["active_units"] == 2 and math.isfinite(ae["aggregate_kl"])
