"""The sharp decoder's loss terms on inputs with known answers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from facevae.models.discriminator import PatchDiscriminator
from facevae.sharp_losses import (ADV_LOSSES, LATENTS, PIXEL_LOSSES, adaptive_weight, feature_matching,
                                  focal_frequency_loss,
                                  msssim_loss, msssim_window, r1_penalty)


def images(seed: int, n: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_pixel_terms_are_l1_and_squared_error():
    x, y = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert PIXEL_LOSSES["l1"](x, y).item() == pytest.approx(0.5)
    assert PIXEL_LOSSES["gaussian"](x, y).item() == pytest.approx(0.25)


def test_msssim_is_zero_for_equal_images_and_grows_with_noise():
    x = images(0)
    assert msssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    slight = msssim_loss((x + 0.05 * images(1)).clamp(0, 1), x)
    strong = msssim_loss(images(2), x)
    assert 0 < slight < strong
    assert msssim_window(64) == 3 and msssim_window(128) == 7 and msssim_window(256) == 11
    small = images(3, size=32)  # too small for five scales: single-scale SSIM
    assert msssim_loss(small, small).item() == pytest.approx(0.0, abs=1e-5) and msssim_loss(images(4, size=32), small) > 0.5


def test_focal_frequency_loss_weights_the_worst_frequencies():
    x = images(0, n=1)
    assert focal_frequency_loss(x, x).item() == 0.0

    def spectral_mse(a, b):
        return (torch.fft.fft2(a, norm="ortho") - torch.fft.fft2(b, norm="ortho")).abs().square().mean()

    grid = torch.arange(64.0)
    wave = torch.cos(2 * torch.pi * 4 * grid / 64).expand(1, 3, 64, 64)  # one frequency (and its mirror)
    one = x + 0.1 * wave
    # every wrong frequency equally wrong: each gets the full weight 1
    assert focal_frequency_loss(one, x).item() == pytest.approx(spectral_mse(one, x).item(), rel=1e-5)
    # a second, smaller error is weighted by its distance relative to the worst: the loss falls below the MSE
    two = one + 0.02 * torch.cos(2 * torch.pi * 9 * grid / 64).view(64, 1).expand(1, 3, 64, 64)
    assert focal_frequency_loss(two, x) < spectral_mse(two, x)


def test_hinge_and_non_saturating_losses_have_their_textbook_values():
    d, g = ADV_LOSSES["hinge"]
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert d(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.0) / 2)
    assert g(fake).item() == pytest.approx(1.0)
    d, g = ADV_LOSSES["ns"]
    zero = torch.zeros(3)
    assert d(zero, zero).item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item())
    assert g(zero).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_last_layer():
    last = nn.Parameter(torch.tensor([1.0, 2.0]))
    rec = (3 * last).sum()  # grad (3, 3), norm 3 sqrt 2
    gen = (last ** 2).sum()  # grad (2, 4), norm sqrt 20
    w = adaptive_weight(rec, gen, last)
    assert w.item() == pytest.approx(3 * 2 ** 0.5 / (20 ** 0.5 + 1e-4), rel=1e-6)
    assert not w.requires_grad


def test_the_adaptive_weight_is_capped_at_its_limit():
    last = nn.Parameter(torch.tensor([1.0, 2.0]))
    rec, gen = (300 * last).sum(), (0.01 * last).sum()  # a ratio of 30,000
    assert adaptive_weight(rec, gen, last).item() == pytest.approx(1e4)  # VQGAN's clamp
    assert adaptive_weight(rec, gen, last, 1.0).item() == 1.0


def test_feature_matching_is_the_mean_layer_l1_and_trains_only_the_fakes():
    fake = [torch.zeros(2, 3, requires_grad=True), torch.ones(1, 4, requires_grad=True)]
    real = [torch.full((2, 3), 2.0, requires_grad=True), torch.full((1, 4), 4.0, requires_grad=True)]
    loss = feature_matching(fake, real)
    assert loss.item() == pytest.approx((2.0 + 3.0) / 2)
    loss.backward()
    assert fake[0].grad is not None and real[0].grad is None  # the real features are targets


def test_the_discriminator_features_are_its_activations_on_the_way_to_the_logits():
    disc = PatchDiscriminator((8, 16), "none")
    feats, logits = disc.features(images(0, size=32))
    assert [f.shape[1:] for f in feats] == [(8, 16, 16), (16, 8, 8)]
    torch.testing.assert_close(logits, disc(images(0, size=32)))


def test_r1_is_the_squared_input_gradient_of_the_discriminator():
    w = torch.tensor([1.0, -2.0, 2.0])
    x = torch.randn(4, 3, requires_grad=True)
    assert r1_penalty(x @ w, x).item() == pytest.approx(9.0)  # |w|^2 for every image


def test_the_patch_discriminator_gives_one_logit_per_patch_and_spectral_norm_bounds_it():
    disc = PatchDiscriminator((8, 16, 32), "spectral")
    assert disc(images(0)).shape == (2, 1, 7, 7)
    for _ in range(10):  # power iterations converge as training steps run
        disc(images(0))
    weight = disc.net[0].weight  # the normalised weight the layer uses, after those iterations
    assert torch.linalg.matrix_norm(weight.flatten(1), ord=2) <= 1.05
    raw = PatchDiscriminator((8, 16, 32), "none").net[0].weight
    assert torch.linalg.matrix_norm(raw.flatten(1), ord=2) > 0  # (unnormalised: any size)
    plain = PatchDiscriminator((8,), "none")
    assert plain(images(0, size=32)).shape == (2, 1, 15, 15)


def test_latents_draw_from_the_posterior_or_take_its_mean():
    mean, logvar = torch.zeros(5000, 2), torch.full((5000, 2), 2 * torch.log(torch.tensor(3.0)))
    z = LATENTS["sample"](mean, logvar, torch.Generator().manual_seed(0))
    assert z.std().item() == pytest.approx(3.0, rel=0.05)
    assert torch.equal(LATENTS["mean"](mean, logvar, None), mean)
