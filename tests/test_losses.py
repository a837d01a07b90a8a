import math

import pytest
import torch

from facevae.config import LossConfig
from facevae.losses import beta_at, recon_nll, vae_loss
from facevae.models import DiagonalGaussian
from facevae.models.vae import VAEOutput


def _out(logits, mean, logvar, log_sigma=None):
    post = DiagonalGaussian(mean, logvar)
    return VAEOutput(post, mean, logits, log_sigma)


def test_kl_of_standard_normal_is_zero():
    post = DiagonalGaussian(torch.zeros(4, 16), torch.zeros(4, 16))
    assert torch.equal(post.kl(), torch.zeros(4))


def test_kl_hand_computed():
    # KL(N(mu, s^2) || N(0,1)) = 0.5 (mu^2 + s^2 - 1 - log s^2)
    mu, var = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 2.0]])
    expected = 0.5 * (1 + 0.5 - 1 - math.log(0.5)) + 0.5 * (4 + 2 - 1 - math.log(2.0))
    assert DiagonalGaussian(mu, var.log()).kl().item() == pytest.approx(expected, rel=1e-6)


def test_bce_hand_computed():
    x = torch.tensor([[[[1.0, 0.0]]]])
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])  # p = 0.5 and 0.75
    out = _out(logits, torch.zeros(1, 2), torch.zeros(1, 2))
    expected = -math.log(0.5) - math.log(0.25)
    assert recon_nll(x, out, LossConfig(recon="bce")).item() == pytest.approx(expected, rel=1e-6)


def test_gaussian_fixed_sigma_hand_computed():
    x = torch.tensor([[[[0.2, 0.9]]]])
    logits = torch.zeros(1, 1, 1, 2)  # mean 0.5
    out = _out(logits, torch.zeros(1, 2), torch.zeros(1, 2))
    sigma = 0.1
    expected = sum(0.5 * ((xv - 0.5) / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi) for xv in (0.2, 0.9))
    assert recon_nll(x, out, LossConfig(recon="mse", sigma=sigma)).item() == pytest.approx(expected, rel=1e-5)


def test_gaussian_learned_sigma_uses_model_parameter():
    x = torch.tensor([[[[0.2]]]])
    out = _out(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1), torch.zeros(1, 1), log_sigma=torch.tensor([math.log(0.3)]))
    expected = 0.5 * (0.3 / 0.3) ** 2 + math.log(0.3) + 0.5 * math.log(2 * math.pi)
    assert recon_nll(x, out, LossConfig(recon="mse", sigma=1.0)).item() == pytest.approx(expected, rel=1e-5)


def test_laplace_hand_computed():
    x = torch.tensor([[[[0.1, 0.5]]]])
    out = _out(torch.zeros(1, 1, 1, 2), torch.zeros(1, 2), torch.zeros(1, 2))
    b = 0.2
    expected = sum(abs(xv - 0.5) / b + math.log(2 * b) for xv in (0.1, 0.5))
    assert recon_nll(x, out, LossConfig(recon="l1", sigma=b)).item() == pytest.approx(expected, rel=1e-5)


def test_total_is_recon_plus_beta_kl_and_warmup_is_linear():
    cfg = LossConfig(recon="bce", beta=2.0, kl_warmup_steps=10)
    x = torch.rand(3, 3, 4, 4)
    out = _out(torch.randn(3, 3, 4, 4), torch.randn(3, 5), torch.randn(3, 5))
    terms = vae_loss(x, out, cfg=cfg, step=5)
    assert terms.beta == pytest.approx(1.0)
    assert terms.total.item() == pytest.approx(terms.recon.item() + 1.0 * terms.kl.item(), rel=1e-6)
    assert beta_at(0, cfg) == 0.0 and beta_at(10, cfg) == 2.0 and beta_at(50, cfg) == 2.0


def test_free_bits_floor_kl_per_dimension():
    out = _out(torch.zeros(2, 3, 2, 2), torch.zeros(2, 4), torch.zeros(2, 4))  # KL exactly 0 per dim
    terms = vae_loss(torch.rand(2, 3, 2, 2), out, cfg=LossConfig(free_bits=0.5))
    assert terms.kl.item() == pytest.approx(4 * 0.5)
