"""Reconstruction metrics: MSE, PSNR, SSIM, and 8-bit reconstructions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.metrics import recon
from facevae.models import build_model
from facevae.viz.grid import to_uint8


def _images(n: int = 3, size: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


# ----------------------------------------------------------------------------- MSE / PSNR

def test_mse_and_psnr_by_hand():
    a = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    b = torch.full((1, 3, 2, 2), 51, dtype=torch.uint8)  # 51 / 255 = 0.2 everywhere
    mse = recon.mse_per_image(a, b)
    assert float(mse) == pytest.approx(0.04)
    assert float(recon.psnr_from_mse(mse)) == pytest.approx(10 * math.log10(25))
    c = a.clone()
    c[0, 1, 0, 1] = 255  # one sub-pixel of 12 off by the full range
    assert float(recon.mse_per_image(a, c)) == pytest.approx(1 / 12)
    assert float(recon.psnr_from_mse(recon.mse_per_image(a, c))) == pytest.approx(10 * math.log10(12))


def test_psnr_is_averaged_per_image_and_capped():
    a = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    b = a.clone()
    b[1] = 51  # image 0 identical (capped at 100 dB), image 1 at MSE 0.04
    m = recon.recon_metrics(a, b)
    assert m["images"] == 2
    assert m["mse"] == pytest.approx(0.02)
    assert m["psnr_db"] == pytest.approx((recon.PSNR_CAP_DB + 10 * math.log10(25)) / 2)


def test_shape_mismatch_is_a_user_error():
    with pytest.raises(FacevaeError, match="one shape"):
        recon.mse_per_image(_images(2), _images(3))


# ----------------------------------------------------------------------------- SSIM

def _ssim_reference(x: np.ndarray, y: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """Loop-by-window SSIM straight from Wang et al. (2004), with weighted local statistics."""
    r = np.arange(window) - (window - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for ch in range(x.shape[0]):
        for i in range(x.shape[1] - window + 1):
            for j in range(x.shape[2] - window + 1):
                px, py = x[ch, i:i + window, j:j + window], y[ch, i:i + window, j:j + window]
                mx, my = (w * px).sum(), (w * py).sum()
                vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
                cxy = (w * (px - mx) * (py - my)).sum()
                vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_of_identical_images_is_one():
    x = _images(4)
    np.testing.assert_allclose(recon.ssim_per_image(x, x.clone()).numpy(), 1.0, atol=1e-12)
    f = torch.rand(2, 3, 32, 32)
    np.testing.assert_allclose(recon.ssim_per_image(f, f).numpy(), 1.0, atol=1e-12)


def test_ssim_of_flat_images_has_a_closed_form():
    # no variance anywhere: SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 0.3, 0.7
    x, y = (torch.full((1, 3, 16, 16), v, dtype=torch.float64) for v in (a, b))
    c1 = 0.01**2
    assert float(recon.ssim_per_image(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-10)


def test_ssim_matches_a_window_by_window_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 14, 15, generator=g, dtype=torch.float64)
    y = (x + 0.15 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert float(recon.ssim_per_image(x, y)) == pytest.approx(_ssim_reference(x[0].numpy(), y[0].numpy()), rel=1e-10)


def test_ssim_falls_as_noise_grows():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 32, 32, generator=g)
    scores = [float(recon.ssim_per_image(x, (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1)).mean())
              for s in (0.02, 0.1, 0.3)]
    assert scores[0] > scores[1] > scores[2]


def test_ssim_needs_images_larger_than_the_window():
    with pytest.raises(FacevaeError, match="at least 11x11"):
        recon.ssim_per_image(_images(1, size=8), _images(1, size=8))


# ----------------------------------------------------------------------------- reconstructions

def test_reconstructions_are_png_rounded_decodes_of_the_posterior_mean():
    cfg = RunConfig().override(["model.image_size=32", "model.widths=[8,16]", "model.latent_dim=4"])
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    x8 = _images(5, size=32)
    r8 = recon.reconstruct_uint8(model, x8, batch_size=2)
    assert r8.dtype == torch.uint8 and r8.shape == x8.shape
    with torch.no_grad():
        expected = to_uint8(model.decode(model.encode(x8.float() / 255).mean))
    torch.testing.assert_close(r8, expected, rtol=0, atol=1)  # batch-size round-off may flip a rounding
    m = recon.recon_metrics(x8, r8)
    assert m["images"] == 5 and 0 < m["mse"] < 1 and -1 <= m["ssim"] <= 1
