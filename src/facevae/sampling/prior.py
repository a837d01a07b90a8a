"""The VAE prior N(0, T^2 I), the baseline every fitted sampler is compared with, and seed 004's shifted prior."""
from __future__ import annotations

import math
from typing import Mapping

import torch

from facevae.errors import FacevaeError
from facevae.sampling.base import SAMPLE_DTYPE, Sampler, check_draw, standard_normal


class PriorSampler(Sampler):
    """Samples N(0, T^2 I); `fit` only records the latent size and device."""

    name = "prior"
    fits_latents = False
    description = "N(0, I), the model's prior"

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
            raise FacevaeError(f"{self.name} sampler state should be empty, got {sorted(state)}")


class ShiftedPriorSampler(PriorSampler):
    """N(shift, T^2 I), the prior moved by +0.5 in every dimension: a patch one of the seed
    projects (004) applied to its samples.

    A sampler of its own so that patch is measured beside the prior and the fitted Gaussian
    (docs/results.md, FID-10k), not because it is expected to beat them.
    """

    name = "shifted"
    description = "the prior moved by +0.5 in every dimension, N(0.5, I)"  # the default shift, the seed's

    def __init__(self, latent_dim: int | None = None, shift: float = 0.5):
        super().__init__(latent_dim)
        if not isinstance(shift, (int, float)) or not math.isfinite(shift):
            raise FacevaeError(f"the shifted prior's shift must be a finite number, got {shift!r}")
        self.shift = float(shift)

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        return super().sample(n, generator, temperature) + self.shift

    def options(self) -> dict:
        return {**super().options(), "shift": self.shift}
