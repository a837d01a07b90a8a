"""The loss terms of a sharp decoder: a pixel anchor, weight-free perceptual terms, an adversarial game.

Pure tensors in, scalars out. None of them uses a pretrained network's features: FID's
Inception in a loss would train on the metric. The images are decoder means in [0, 1].
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim, ssim


# ----------------------------------------------------------------------------- the pixel anchor


def _l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().mean()


def _gaussian(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).square().mean()  # the Gaussian NLL at a fixed sigma, up to scale and a constant


PIXEL_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"l1": _l1, "gaussian": _gaussian}


def _sample(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * noise


def _mean(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return mean


# what the decoder is fed from q(z|x): a draw (as in training, robust to sampler codes) or the mean
LATENTS: dict[str, Callable[..., torch.Tensor]] = {"sample": _sample, "mean": _mean}


# ----------------------------------------------------------------------------- weight-free perceptual terms


def msssim_window(size: int) -> int:
    """The largest odd Gaussian window up to 11 that MS-SSIM's five scales allow at `size` pixels."""
    win = 11
    while win > 3 and (win - 1) * 16 >= size:
        win -= 2
    return win


def msssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM (Wang et al. 2003), from the maintained pytorch-msssim; 0 for identical images.

    Five scales need more than 32 pixels; smaller images get single-scale SSIM with a 7-pixel window.
    """
    size, win = min(x.shape[-2:]), msssim_window(min(x.shape[-2:]))
    if (win - 1) * 16 >= size:
        return 1.0 - ssim(x.float(), y.float(), data_range=1.0, win_size=min(7, size - 1 - size % 2))
    return 1.0 - ms_ssim(x.float(), y.float(), data_range=1.0, win_size=win)


def focal_frequency_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Focal frequency loss (Jiang et al., ICCV 2021), written from the paper.

    The squared distance of the two images' 2-D spectra, each frequency weighted by its own
    distance to the power alpha (normalised to [0, 1] per image and channel, and not
    back-propagated), so the frequencies the decoder gets most wrong (the fine detail a
    pixel loss blurs) dominate.
    """
    fx = torch.fft.fft2(x.float(), norm="ortho")
    fy = torch.fft.fft2(y.float(), norm="ortho")
    dist = (fx - fy).abs().square()
    with torch.no_grad():
        w = dist.sqrt().pow(alpha)
        w = w / w.flatten(-2).amax(-1).clamp_min(1e-12)[..., None, None]
    return (w * dist).mean()


# ----------------------------------------------------------------------------- the adversarial game


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _hinge_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def _ns_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _ns_g(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean()


# name -> (discriminator loss of (real logits, fake logits), generator loss of fake logits)
ADV_LOSSES: dict[str, tuple[Callable, Callable]] = {"hinge": (_hinge_d, _hinge_g), "ns": (_ns_d, _ns_g)}


def adaptive_weight(rec: torch.Tensor, gen: torch.Tensor, last: torch.Tensor, limit: float = 1e4) -> torch.Tensor:
    """VQGAN's balance: |grad rec| / |grad gen| at the decoder's last layer, so neither term swamps the other."""
    g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
    g_gen = torch.autograd.grad(gen, last, retain_graph=True)[0]
    return (g_rec.norm() / (g_gen.norm() + 1e-4)).clamp(0.0, limit).detach()


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD (Wang et al. 2018): mean L1 between the discriminator's features of fake and real images,
    averaged over its layers; real features are targets, never trained towards the fakes."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake, real)) / len(fake)


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al. 2018: the squared gradient norm of D at real images, per image (real needs grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()
