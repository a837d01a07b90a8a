"""The VAE prior N(0, T^2 I): the baseline every fitted sampler is compared with."""
from __future__ import annotations

from typing import Mapping

import torch

from facevae.errors import FacevaeError
from facevae.sampling.base import SAMPLE_DTYPE, Sampler, check_draw, standard_normal


class PriorSampler(Sampler):
    """Samples N(0, T^2 I); `fit` only records the latent size and device."""

    name = "prior"
    fits_latents = False

    def fit(self, latents: torch.Tensor) -> PriorSampler:
        self.latent_dim = self._check_latents(latents, min_rows=0)
        return self

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        temperature = check_draw(n, temperature)
        d = self._require_fitted()
        return (temperature * standard_normal(n, d, generator, self.device)).to(SAMPLE_DTYPE)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def _load(self, state: Mapping[str, torch.Tensor]) -> None:
        if state:
            raise FacevaeError(f"prior sampler state should be empty, got {sorted(state)}")
