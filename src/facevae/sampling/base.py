"""The `Sampler` interface: fit on posterior means, then draw latent codes.

A sampler holds only tensors (`state_dict`) plus JSON-able constructor options
(`options`); writing them to disk is `facevae.modelfiles.sampler_files`'s job, never the sampler's.
Temperature is an argument of each `sample` call, not sampler state, so one fitted
sampler serves callers (web sessions, threads) that want different temperatures.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, TypeVar

import torch

from facevae.errors import FacevaeError

S = TypeVar("S", bound="Sampler")

# Decoders run in float32; fitted parameters stay in float64 and only the output is cast.
SAMPLE_DTYPE = torch.float32


class Sampler(ABC):
    """Fit on N x D latents, then `sample(n)` returns n x D codes on the sampler's device."""

    name: ClassVar[str]
    required_keys: ClassVar[tuple[str, ...]] = ()
    # fitted to the training latents (so worth storing beside the checkpoint); the prior is not
    fits_latents: ClassVar[bool] = True
    # the one constructor option a stored fit is keyed by and built with (the GMM's component count)
    stored_option: ClassVar[str | None] = None
    # what a sampler that fits nothing draws from, for reports (a fitted one is described by its fit)
    description: ClassVar[str] = ""

    def __init__(self, latent_dim: int | None = None):
        if latent_dim is not None and (not isinstance(latent_dim, int) or latent_dim < 1):
            raise FacevaeError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        self.latent_dim = latent_dim
        self._device = torch.device("cpu")

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def fitted(self) -> bool:
        return self.latent_dim is not None

    @abstractmethod
    def fit(self: S, latents: torch.Tensor) -> S:
        """Fit to N x D posterior means; returns self."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """n x D float32 latent codes on `self.device`; `temperature` scales the noise (0: the mode)."""

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted tensors (float64), enough with `options()` to rebuild the sampler."""

    @abstractmethod
    def _load(self, state: Mapping[str, torch.Tensor]) -> None:
        """Adopt fitted tensors (any device), raising FacevaeError if their shapes do not fit."""

    def options(self) -> dict[str, Any]:
        """JSON-able constructor keywords, so `type(self)(**options())` is an unfitted twin."""
        return {"latent_dim": self.latent_dim}

    @classmethod
    def from_state_dict(cls: type[S], state: Mapping[str, torch.Tensor], **options: Any) -> S:
        sampler = cls(**options)
        missing = [k for k in cls.required_keys if k not in state]
        if missing:
            raise FacevaeError(f"{cls.name} sampler state lacks {', '.join(missing)}; re-fit and save it again")
        sampler._load(state)
        devices = {t.device for t in state.values()}
        sampler._device = devices.pop() if len(devices) == 1 else torch.device("cpu")
        return sampler

    def to(self: S, device: torch.device | str) -> S:
        """Move the fitted tensors (and where samples appear) to `device`."""
        device = torch.device(device)
        if self.fitted:
            self._load({k: v.to(device) for k, v in self.state_dict().items()})
        self._device = device
        return self

    def _check_latents(self, latents: torch.Tensor, min_rows: int) -> int:
        if not isinstance(latents, torch.Tensor) or latents.ndim != 2 or not latents.is_floating_point():
            raise FacevaeError("latents must be a floating-point N x D tensor of posterior means")
        n, d = latents.shape
        if n < min_rows:
            raise FacevaeError(f"{self.name} sampler needs at least {min_rows} latents, got {n}; encode more images")
        if self.latent_dim is not None and d != self.latent_dim:
            raise FacevaeError(f"latents have {d} dims but the {self.name} sampler was built for {self.latent_dim}")
        if not torch.isfinite(latents).all():
            raise FacevaeError("latents contain NaN or inf; check the encoder or checkpoint they came from")
        self._device = latents.device
        return d

    def _require_fitted(self) -> int:
        if not self.fitted or self.latent_dim is None:
            raise FacevaeError(f"the {self.name} sampler is not fitted; call fit(latents) first")
        return self.latent_dim


def noise_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    # Drawing on the generator's own device lets a CPU generator give the same
    # codes whether the sampler lives on CPU or CUDA.
    return generator.device if generator is not None else device


def standard_normal(n: int, d: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """n x d float64 N(0, I) noise from `generator`, moved to `device`."""
    src = noise_device(generator, device)
    return torch.randn(n, d, generator=generator, device=src, dtype=torch.float64).to(device)


def check_draw(n: int, temperature: float) -> float:
    """Reject a bad sample count or temperature; the temperature as a float."""
    if not isinstance(n, int) or n < 0:
        raise FacevaeError(f"number of samples must be a non-negative integer, got {n!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature >= 0):
        raise FacevaeError(f"temperature must be a number >= 0, got {temperature!r}")
    return float(temperature)
