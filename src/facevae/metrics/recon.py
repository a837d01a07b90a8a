"""Reconstruction quality: MSE, PSNR and SSIM between 8-bit originals and reconstructions.

Reconstructions decode the posterior mean and are rounded to 8 bits exactly as a
saved PNG would be (`facevae.viz.grid.to_uint8`), so the figures describe the
pictures a person sees. All three are computed per image on [0, 1] values and
then averaged over images:

* MSE: mean over the 3*H*W sub-pixels of (x - x_hat)^2.
* PSNR: 10 log10(1 / MSE) dB per image (capped at 100 dB for identical images),
  then averaged (the "mean PSNR" of most papers, not the PSNR of the mean MSE).
* SSIM (Wang et al., 2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01,
  K2 = 0.03, data range 1, each RGB channel separately, averaged over the valid
  window positions (no padding, as the authors' MATLAB code and scikit-image
  with gaussian_weights=True) and the channels. torchmetrics 1.x averages over
  a reflect-padded full image instead (about 1e-3 higher on 64 px faces); given
  the same padding, this code matches it to 1e-15. A 30-line tested
  implementation avoids a new dependency for one function.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from facevae.errors import FacevaeError
from facevae.models.forward import FORWARD_BATCH, batched
from facevae.metrics.stderr import clustered_stderr
from facevae.models.vae import VAE
from facevae.viz.grid import to_uint8

PSNR_CAP_DB = 100.0
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float images -> float64 in [0, 1]."""
    return images.double().div(255.0) if images.dtype == torch.uint8 else images.double()


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise FacevaeError(f"image batches must both be N x C x H x W of one shape, got {tuple(a.shape)} "
                           f"and {tuple(b.shape)}")


def mse_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    _check_pair(a, b)
    return (_unit(a) - _unit(b)).pow(2).flatten(1).mean(1)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    floor = 10.0 ** (-PSNR_CAP_DB / 10.0)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(floor))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """1-D normalised Gaussian weights (float64)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-x.pow(2) / (2 * sigma**2))
    return w / w.sum()


def _blur(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # separable depthwise filter, valid positions only
    c = x.shape[1]
    x = F.conv2d(x, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, w.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Mean SSIM of each image pair (float64, shape (N,))."""
    _check_pair(a, b)
    if min(a.shape[-2:]) < window:
        raise FacevaeError(f"SSIM needs images of at least {window}x{window} pixels, got {tuple(a.shape[-2:])}")
    x, y = _unit(a), _unit(b)
    w = gaussian_window(window, sigma).to(x.device)
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    mx, my = _blur(x, w), _blur(y, w)
    vx = _blur(x * x, w) - mx * mx
    vy = _blur(y * y, w) - my * my
    cxy = _blur(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def reconstruct_uint8(model: VAE, images: torch.Tensor, device: torch.device | str = "cpu",
                      batch_size: int = FORWARD_BATCH) -> torch.Tensor:
    """uint8 reconstructions (decoder mean at the posterior mean) of uint8 images, on the CPU."""
    model.eval()
    return batched(lambda x8: to_uint8(model(x8.float().div(255.0), sample=False).recon), images, device, batch_size)


def recon_metrics(originals: torch.Tensor, recons: torch.Tensor, batch_size: int = 256,
                  clusters: np.ndarray | None = None) -> dict:
    """Mean MSE, PSNR (dB) and SSIM over image pairs, with the count; standard errors clustered by `clusters` too."""
    _check_pair(originals, recons)
    mse, ssim = [], []
    for start in range(0, len(originals), batch_size):
        a, b = originals[start:start + batch_size], recons[start:start + batch_size]
        mse.append(mse_per_image(a, b))
        ssim.append(ssim_per_image(a, b))
    mse_t, ssim_t = torch.cat(mse), torch.cat(ssim)
    n = len(mse_t)
    psnr = psnr_from_mse(mse_t)

    def se(t: torch.Tensor) -> float:
        return float(t.std() / math.sqrt(n)) if n > 1 else float("nan")

    out = {"images": n, "mse": float(mse_t.mean()), "psnr_db": float(psnr.mean()), "psnr_db_stderr": se(psnr),
           "ssim": float(ssim_t.mean()), "ssim_stderr": se(ssim_t)}
    if clusters is not None:
        out.update(identities=len(np.unique(clusters)), psnr_db_stderr_by_identity=clustered_stderr(psnr.numpy(), clusters),
                   ssim_stderr_by_identity=clustered_stderr(ssim_t.numpy(), clusters))
    return out
