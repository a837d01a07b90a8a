"""One diagonal Gaussian (log-density, KL, float64 mode) and one decoder distribution per loss.recon."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from facevae.decoders import RECON_LOSSES
from facevae.latent.stats import kl_per_dim
from facevae.models.posterior import DiagonalGaussian, kl_to_standard_normal, normal_log_density


def test_float64_mode_gives_the_exact_log_density():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    q = DiagonalGaussian(mean, logvar).double()
    z = torch.randn(7, 3, 5, generator=g, dtype=torch.float64)
    expected = stats.norm.logpdf(z.numpy(), mean.double().numpy(), (0.5 * logvar.double()).exp().numpy()).sum(-1)
    got = q.log_prob(z)
    assert got.dtype == torch.float64
    assert torch.allclose(got, torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_one_kl_for_the_model_and_the_latent_statistics():
    g = torch.Generator().manual_seed(1)
    mean, logvar = torch.randn(40, 6, generator=g), torch.randn(40, 6, generator=g).clamp(-4, 4)
    closed = 0.5 * (mean.double() ** 2 + logvar.double().exp() - 1 - logvar.double())
    assert torch.allclose(kl_to_standard_normal(mean.double(), logvar.double()), closed, rtol=1e-12, atol=1e-12)
    assert torch.allclose(kl_per_dim(mean, logvar), DiagonalGaussian(mean.double(), logvar.double()).kl_per_dim().mean(0),
                          rtol=1e-12, atol=0)


def test_two_stage_objective_uses_the_shared_gaussian():
    from facevae.sampling.two_stage import SkipMLP, negative_elbo

    torch.manual_seed(0)
    enc, dec = SkipMLP(3, 6, 8, 1), SkipMLP(3, 3, 8, 1)
    z, log_gamma = torch.randn(5, 3), torch.tensor(-1.3)
    got = negative_elbo(enc, dec, log_gamma, z, torch.Generator().manual_seed(2))
    mu, logvar = enc(z).chunk(2, dim=-1)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(2))
    z_hat = dec(mu + eps * (0.5 * logvar).exp())
    nll = -stats.norm.logpdf(z.numpy(), z_hat.detach().numpy(), math.exp(0.5 * -1.3)).sum(-1)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    assert got.item() == pytest.approx(float((torch.from_numpy(nll) + kl.detach().double()).mean()), rel=1e-5)
    assert normal_log_density(z, z_hat, log_gamma).shape == z.shape


@pytest.mark.parametrize("recon", sorted(RECON_LOSSES))
def test_each_decoder_scores_training_and_8_bit_levels_with_one_density(recon):
    """Inside the range, P(level) ~ density * bin width: the two halves of one object agree."""
    decoder = RECON_LOSSES[recon]
    levels = torch.arange(60, 200, 7, dtype=torch.uint8)
    logits, log_scale = torch.full(levels.shape, 0.3, dtype=torch.float64), math.log(0.2)
    u = levels.double() / 255
    log_density = -decoder.nll(u, logits, log_scale)
    if recon == "bce":  # -BCE = eta u - log(1 + e^eta); the continuous Bernoulli is eta e^(eta u) / (e^eta - 1)
        log_density = log_density + math.log1p(math.exp(0.3)) + math.log(0.3 / math.expm1(0.3))
    discrete = decoder.discrete_log_prob(levels, logits, log_scale)
    assert torch.allclose(discrete, log_density - math.log(255), atol=1e-4)
    assert decoder.description
