"""One full-covariance Gaussian fitted to the posterior means (an "ex-post" prior)."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from facevae.errors import FacevaeError
from facevae.sampling.base import SAMPLE_DTYPE, Sampler, check_draw, standard_normal
from facevae.sampling.linalg import cholesky_with_jitter, data_scale


class GaussianSampler(Sampler):
    """N(mean, T^2 L L^T) with L the Cholesky factor of the latents' covariance.

    `jitter` is relative to the mean per-dimension variance and keeps the factor
    defined when some latent dims have collapsed to (near) zero variance.
    """

    name = "gaussian"
    required_keys = ("mean", "scale_tril")

    def __init__(self, latent_dim: int | None = None, jitter: float = 1e-6):
        super().__init__(latent_dim)
        if not jitter >= 0:
            raise FacevaeError(f"jitter must be >= 0, got {jitter!r}")
        self.jitter = float(jitter)
        self.mean: torch.Tensor | None = None
        self.scale_tril: torch.Tensor | None = None

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    def options(self) -> dict[str, Any]:
        return {**super().options(), "jitter": self.jitter}

    def fit(self, latents: torch.Tensor) -> GaussianSampler:
        d = self._check_latents(latents, min_rows=2)
        x = latents.detach().to(torch.float64)
        mean = x.mean(0)
        cov = torch.cov(x.mT)
        self._load({"mean": mean, "scale_tril": cholesky_with_jitter(cov, self.jitter * data_scale(x))})
        self.latent_dim = d
        return self

    @property
    def covariance(self) -> torch.Tensor:
        self._require_fitted()
        return self.scale_tril @ self.scale_tril.mT

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        temperature = check_draw(n, temperature)
        d = self._require_fitted()
        eps = standard_normal(n, d, generator, self.device)
        return (self.mean + temperature * eps @ self.scale_tril.mT).to(SAMPLE_DTYPE)

    def state_dict(self) -> dict[str, torch.Tensor]:
        self._require_fitted()
        return {"mean": self.mean, "scale_tril": self.scale_tril}

    def _load(self, state: Mapping[str, torch.Tensor]) -> None:
        mean, tril = state["mean"].to(torch.float64), state["scale_tril"].to(torch.float64)
        d = mean.shape[-1] if mean.ndim else 0
        if mean.shape != (d,) or tril.shape != (d, d) or self.latent_dim not in (None, d):
            raise FacevaeError(f"gaussian sampler state has shapes {tuple(mean.shape)} and {tuple(tril.shape)}, "
                               f"not ({self.latent_dim},) and square; re-fit and save it again")
        self.mean, self.scale_tril, self.latent_dim = mean, tril, d
