"""Samplers by name, for the CLI and config files."""
from __future__ import annotations

import inspect
from typing import Any

from facevae.errors import FacevaeError, did_you_mean
from facevae.sampling.base import Sampler
from facevae.sampling.diffusion import DiffusionSampler
from facevae.sampling.gaussian import GaussianSampler
from facevae.sampling.gmm import GMMSampler
from facevae.sampling.prior import PriorSampler, ShiftedPriorSampler
from facevae.sampling.two_stage import TwoStageSampler

SAMPLERS: dict[str, type[Sampler]] = {"prior": PriorSampler, "gaussian": GaussianSampler, "gmm": GMMSampler,
                                      "two_stage": TwoStageSampler, "diffusion": DiffusionSampler,
                                      "shifted": ShiftedPriorSampler}


def sampler_class(name: str) -> type[Sampler]:
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise FacevaeError(f"unknown sampler {name!r}{did_you_mean(name, SAMPLERS)}; choose one of: {', '.join(SAMPLERS)}") from None


def build_sampler(name: str, latent_dim: int | None = None, **options: Any) -> Sampler:
    """An unfitted sampler; options are its constructor keywords (e.g. components=10)."""
    cls = sampler_class(name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "latent_dim")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise FacevaeError(f"sampler {name!r} has no option {', '.join(unknown)}; "
                           f"its options are: {', '.join(allowed)}")
    return cls(latent_dim=latent_dim, **options)
