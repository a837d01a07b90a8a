"""How a model uses its latent space: activity, KL per dimension, a 2-D projection.

Pure functions of posterior parameters (means, logvars: N x D tensors);
`facevae.tasks.latents` encodes a split and writes the figures and a JSON summary.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from facevae.errors import FacevaeError
from facevae.models.posterior import kl_to_standard_normal, normal_log_density

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016: a unit is active when Cov_x(E[z|x]) > 0.01


def _check_means(means: torch.Tensor, min_rows: int = 2) -> torch.Tensor:
    if not isinstance(means, torch.Tensor) or means.ndim != 2 or not means.is_floating_point():
        raise FacevaeError("latent means must be a floating-point N x D tensor")
    if len(means) < min_rows:
        raise FacevaeError(f"need at least {min_rows} encoded images, got {len(means)}: use a larger split")
    return means.double()


def latent_activity(means: torch.Tensor) -> torch.Tensor:
    """Cov_x(E[z|x]) per dimension: the variance over images of each posterior mean, (D,) float64.

    Population (1/N) variance, as in facevae.metrics.latent_health, so both count the same units.
    """
    return _check_means(means).var(dim=0, unbiased=False)


def active_units(means: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """The number of dimensions whose posterior mean varies across images by more than `threshold`."""
    return int((latent_activity(means) > threshold).sum())


def kl_per_dim(means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """KL(q(z_d|x) || N(0, 1)) averaged over images, (D,) float64 in nats; sums to the mean total KL."""
    mu = _check_means(means, min_rows=1)
    if logvars.shape != means.shape:
        raise FacevaeError(f"logvars {tuple(logvars.shape)} do not match means {tuple(means.shape)}")
    lv = logvars.double()
    if not torch.isfinite(lv).all():
        raise FacevaeError("logvars are not finite: a plain autoencoder (model.kind=ae) has no KL")
    return kl_to_standard_normal(mu, lv).mean(dim=0)


def pca_2d(means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(coordinates (N, 2), explained-variance ratios (2,)) of the centred means on their top two axes.

    Exact SVD rather than a randomised one, so the same means always give the same picture;
    each axis's sign is fixed so its largest-magnitude loading is positive.
    """
    x = _check_means(means, min_rows=3)
    if x.shape[1] < 2:
        raise FacevaeError("a 2-D projection needs a latent space of at least 2 dimensions")
    centred = x - x.mean(dim=0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:2]
    flip = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))
    axes = axes * flip
    var = s.pow(2)
    ratio = var[:2] / var.sum().clamp_min(1e-300)
    return (centred @ axes.T).float(), ratio.float()


@dataclass
class LatentSummary:
    """Everything `facevae latents` reports, before it is drawn."""

    activity: torch.Tensor  # (D,)
    kl: torch.Tensor | None  # (D,), None for a plain autoencoder
    pca: torch.Tensor  # (N, 2)
    pca_ratio: torch.Tensor  # (2,)
    threshold: float

    @property
    def active(self) -> torch.Tensor:
        return self.activity > self.threshold

    def to_json(self) -> dict:
        order = torch.argsort(self.activity, descending=True)
        kl = None if self.kl is None else [round(float(v), 5) for v in self.kl]
        return {
            "latent_dim": len(self.activity),
            "active_units": int(self.active.sum()),
            "active_threshold": self.threshold,
            "active_dims": [int(d) for d in torch.nonzero(self.active).flatten()],
            "activity_per_dim": [round(float(v), 6) for v in self.activity],
            "most_active_dims": [int(d) for d in order[:8]],
            "least_active_dims": [int(d) for d in order[-8:].flip(0)],
            "kl_per_dim": kl,
            "total_kl": None if self.kl is None else round(float(self.kl.sum()), 4),
            "pca_explained_variance": [round(float(v), 5) for v in self.pca_ratio],
        }


def summarize(means: torch.Tensor, logvars: torch.Tensor | None, threshold: float = ACTIVE_THRESHOLD) -> LatentSummary:
    finite = logvars is not None and bool(torch.isfinite(logvars).all())
    coords, ratio = pca_2d(means)
    return LatentSummary(latent_activity(means), kl_per_dim(means, logvars) if finite else None, coords, ratio,
                         threshold)


def normal_pdf(x: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return normal_log_density(x, zero, zero).exp()
