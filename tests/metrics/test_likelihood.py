"""Discretised decoder likelihoods, the negative ELBO and the IWAE bound."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae import decoders
from facevae.decoders import decoder_distribution
from facevae.losses import recon_nll
from facevae.metrics import likelihood as lk
from facevae.models import build_model

LEVELS = torch.arange(256, dtype=torch.uint8)


def _tiny_model(recon: str = "bce", kind: str = "vae", learned_sigma: bool = False, seed: int = 0):
    cfg = RunConfig().override(["model.image_size=32", "model.widths=[8,16]", "model.latent_dim=6",
                                f"model.kind={kind}", f"loss.recon={recon}", "loss.sigma=0.1",
                                f"model.learned_sigma={str(learned_sigma).lower()}"])
    torch.manual_seed(seed)
    model = build_model(cfg.model).eval()
    if learned_sigma:
        with torch.no_grad():
            model.log_sigma.fill_(math.log(0.05))
    return model, cfg


def _faces(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Smooth 8-bit images with every level possible, including the edge levels 0 and 255."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 4, 4, generator=g) * 1.4 - 0.2
    up = torch.nn.functional.interpolate(base, size=32, mode="bilinear", align_corners=False)
    return (up.clamp(0, 1) * 255).round().to(torch.uint8)


def _tail_difference(dist, lo, hi, upper):
    """P(lo < u <= hi) with scipy, from the tail each bin lies in (cdf - cdf cancels above the mean)."""
    return np.where(upper, dist.sf(lo) - dist.sf(hi), dist.cdf(hi) - dist.cdf(lo))


# ----------------------------------------------------------------------------- discretisation

@pytest.mark.parametrize("recon", ["mse", "l1", "bce"])
@pytest.mark.parametrize("logit", [-9.0, -1.0, 0.0, 1e-7, 0.4, 3.0, 12.0])
@pytest.mark.parametrize("sigma", [1e-4, 0.01, 0.2, 1.0, 30.0])
def test_levels_of_a_pixel_sum_to_one(recon, logit, sigma):
    logp = decoder_distribution(recon).discrete_log_prob(LEVELS, torch.full((256,), logit, dtype=torch.float64), math.log(sigma))
    assert torch.isfinite(logp).all()
    assert float(torch.logsumexp(logp, 0)) == pytest.approx(0.0, abs=1e-10)


def test_gaussian_bins_match_scipy():
    mean, sigma = 0.37, 0.05
    logp = decoders.gaussian_bin_log_prob(LEVELS, torch.tensor(mean, dtype=torch.float64), math.log(sigma))
    k = np.arange(256)
    lo = np.where(k == 0, -np.inf, (k - 0.5) / 255)
    hi = np.where(k == 255, np.inf, (k + 0.5) / 255)
    expected = _tail_difference(stats.norm(mean, sigma), lo, hi, k / 255 > mean)
    np.testing.assert_allclose(logp.exp().numpy(), expected, rtol=1e-9, atol=1e-300)
    # deep in the tail the log stays finite and ordered where the plain difference is 0
    assert float(logp[255]) < float(logp[200]) < float(logp[150]) < 0


def test_laplace_bins_match_scipy():
    mean, b = 0.8, 0.03
    logp = decoders.laplace_bin_log_prob(LEVELS, torch.tensor(mean, dtype=torch.float64), math.log(b))
    k = np.arange(256)
    lo = np.where(k == 0, -np.inf, (k - 0.5) / 255)
    hi = np.where(k == 255, np.inf, (k + 0.5) / 255)
    expected = _tail_difference(stats.laplace(mean, b), lo, hi, k / 255 > mean)
    np.testing.assert_allclose(logp.exp().numpy(), expected, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("logit", [-4.0, 0.3, 2.5])
def test_continuous_bernoulli_bins_integrate_the_normalised_bce_density(logit):
    lam = 1 / (1 + math.exp(-logit))
    normaliser = integrate.quad(lambda u: lam**u * (1 - lam) ** (1 - u), 0, 1)[0]
    for level in (0, 1, 77, 200, 255):
        lo, hi = max(0.0, (level - 0.5) / 255), min(1.0, (level + 0.5) / 255)
        mass = integrate.quad(lambda u: lam**u * (1 - lam) ** (1 - u), lo, hi)[0] / normaliser
        got = decoders.continuous_bernoulli_bin_log_prob(torch.tensor(level, dtype=torch.uint8),
                                                   torch.tensor(logit, dtype=torch.float64))
        assert float(got.exp()) == pytest.approx(mass, rel=1e-9)


def test_bits_per_dim_is_nats_over_d_ln2():
    assert lk.bits_per_dim(1000.0, 3 * 32 * 32) == pytest.approx(1000.0 / (3 * 32 * 32 * math.log(2)))
    # a uniform distribution over 256 levels is exactly 8 bits per sub-pixel
    uniform_nats = 3 * 32 * 32 * math.log(256)
    assert lk.bits_per_dim(uniform_nats, 3 * 32 * 32) == pytest.approx(8.0)


def test_unknown_decoder_is_a_user_error():
    with pytest.raises(FacevaeError, match="no decoder distribution"):
        decoder_distribution("poisson")


# ----------------------------------------------------------------------------- bounds

@pytest.mark.parametrize("recon,learned", [("bce", False), ("mse", True), ("l1", False)])
def test_iwae_is_below_the_negative_elbo(recon, learned):
    model, cfg = _tiny_model(recon, learned_sigma=learned)
    x8 = _faces(6)
    res = lk.likelihood_bounds(model, x8, cfg.loss, k=64, seed=0, batch_size=3)
    assert res.iwae_nll.shape == (6,) and torch.isfinite(res.iwae_nll).all()
    assert (res.iwae_nll <= res.neg_elbo + 1e-6).all()
    summary = res.summary()
    d = 3 * 32 * 32
    assert summary["dims"] == d and summary["images"] == 6 and summary["k"] == 64
    for bound in ("iwae_nll", "neg_elbo"):
        s = summary[bound]
        assert s["bits_per_dim"] == pytest.approx(s["nats"] / (d * math.log(2)))
    assert "bits_per_dim" not in summary["training_surrogate"]  # continuous units: no bits/dim


def test_iwae_with_one_sample_is_the_elbo_in_expectation():
    model, cfg = _tiny_model("mse")
    x8 = _faces(3, seed=1)
    # with k = 1 the bound is one draw's log-weight, exactly
    one = lk.batch_bounds(model, x8, cfg.loss, 1, torch.Generator().manual_seed(3))["iwae_nll"]
    w1 = lk.log_weights(model, x8, cfg.loss, 1, torch.Generator().manual_seed(3))
    torch.testing.assert_close(one, -w1.log_w[0], rtol=0, atol=1e-9)
    # averaged over many draws it is the ELBO (whose KL we take in closed form)
    w = lk.log_weights(model, x8, cfg.loss, 256, torch.Generator().manual_seed(4))
    neg_elbo = -w.log_px.mean(0) + w.kl
    draws = -w.log_w
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - neg_elbo).abs() < 4 * se).all()
    assert (se < 0.05 * neg_elbo.abs()).all()  # the check above is not vacuous
    # more samples tighten the bound well beyond that noise
    iwae_64 = lk.likelihood_bounds(model, x8, cfg.loss, k=64, seed=2).iwae_nll
    assert (iwae_64 < draws.mean(0) - 4 * se).all()


def test_surrogate_is_the_training_loss():
    model, cfg = _tiny_model("bce")
    x8 = _faces(3, seed=2)
    g = torch.Generator().manual_seed(5)
    got = lk.batch_bounds(model, x8, cfg.loss, 1, g)
    # redo the single draw by hand and score it with the training loss
    x = x8.float() / 255
    post = model.encode(x)
    eps = torch.randn((1, *post.mean.shape), generator=torch.Generator().manual_seed(5))
    z = post.mean + post.std * eps[0]
    from facevae.models.vae import VAEOutput

    out = VAEOutput(post, z, model.decode_logits(z), None)
    expected = recon_nll(x, out, cfg.loss).double() + post.kl().double()
    torch.testing.assert_close(got["surrogate"], expected, rtol=1e-5, atol=1e-3)


def test_autoencoder_has_no_likelihood_bound():
    model, cfg = _tiny_model("bce", kind="ae")
    with pytest.raises(FacevaeError, match="deterministic autoencoder"):
        lk.likelihood_bounds(model, _faces(2), cfg.loss, k=4)


def test_float_images_are_rejected():
    model, cfg = _tiny_model("bce")
    with pytest.raises(FacevaeError, match="uint8"):
        lk.likelihood_bounds(model, _faces(2).float() / 255, cfg.loss, k=4)
