"""The web page's view of one `FaceVAE`: uint8 pictures out, slider vectors in, everything slow done once.

Everything slow (loading weights, attribute vectors, fitted samplers, the active
latent dimensions) happens once in `Explorer.load`; afterwards each interaction is
at most one small batch through the decoder (or one image through the encoder).
The model work is `FaceVAE`'s; this adapter only turns its float tensors into the
page's uint8 arrays and its sliders into one latent offset. No Gradio here, so the
benchmark and the unit tests drive it directly.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from facevae.api import MAX_TEMPERATURE, FaceVAE, load
from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.models.forward import batched
from facevae.models.vae import VAE
from facevae.sampling import build_sampler
from facevae.sampling.base import Sampler
from facevae.sampling.registry import SAMPLERS
from facevae.viz.grid import to_uint8

ACTIVE_DIMS = 8  # latent sliders shown
ACTIVITY_SAMPLES = 128  # prior draws decoded and re-encoded to rank the dimensions


@dataclass
class Explorer:
    """A FaceVAE plus its editing directions; methods take and return CPU tensors / uint8 arrays."""

    vae: FaceVAE
    attr_names: list[str] = field(default_factory=list)
    attr_steps: torch.Tensor | None = None  # (A, D): strength 1 of attribute i adds row i
    attr_note: str = ""  # why there are no attribute sliders, when there are none
    dims: torch.Tensor | None = None  # (K,) the most active latent dimensions, most active first
    dim_scale: torch.Tensor | None = None  # (K,) their spread: slider value 1 moves one spread
    samplers: dict[str, Sampler] = field(default_factory=dict)  # what the page offers, by name
    sampler_note: str = ""

    def __post_init__(self):
        if not self.samplers:
            self.samplers = {"prior": build_sampler("prior", self.latent_dim)}
        if self.dims is None:
            self.dims, self.dim_scale = active_dimensions(self.vae.model, self.latent_dim, device=self.vae.device)
        self._basis = self._edit_basis()

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(cls, ckpt: str | Path | None, data: str | Path | None = None, device: str = "auto",
             components: int = 10, log=None, decoder: str = "auto") -> "Explorer":
        """Load the model and everything cached for it; `data` computes what is missing (once)."""
        log = log or (lambda msg: print(msg, file=sys.stderr))
        vae = load(ckpt, device=device, data=data, decoder=decoder)
        names, steps, attr_note = load_attributes(vae, data, log)
        if data is not None:
            log(f"samplers: reading the stored fits or fitting them once on {data} ...")
        samplers, sampler_note = load_samplers(vae, components)
        return cls(vae, names, steps, attr_note, samplers=samplers, sampler_note=sampler_note)

    @property
    def cfg(self) -> RunConfig:
        return self.vae.config

    @property
    def latent_dim(self) -> int:
        return self.vae.latent_dim

    @property
    def image_size(self) -> int:
        return self.vae.image_size

    @property
    def n_sliders(self) -> int:
        return len(self.attr_names) + len(self.dims)

    def _edit_basis(self) -> torch.Tensor:
        """(A + K, D): slider values times this matrix is the offset added to the chosen latent."""
        rows = [self.attr_steps.float().cpu()] if self.attr_steps is not None and len(self.attr_names) else []
        one_hot = torch.zeros(len(self.dims), self.latent_dim)
        one_hot[torch.arange(len(self.dims)), self.dims] = self.dim_scale.float()
        return torch.cat([*rows, one_hot])

    # ------------------------------------------------------------------ latents

    def sample(self, sampler: str, n: int, seed: int, temperature: float) -> torch.Tensor:
        """(n, D) float32 codes from a named sampler; the same seed gives the same faces."""
        if sampler not in self.samplers:
            raise FacevaeError(f"sampler {sampler!r} is not available here; choose one of: {', '.join(self.samplers)}")
        if not (0.0 < temperature <= MAX_TEMPERATURE):  # 0 would draw one face n times
            raise FacevaeError(f"temperature must be in (0, {MAX_TEMPERATURE:g}], got {temperature}")
        return self.vae.sample_latents(n, sampler=self.samplers[sampler], seed=seed, temperature=temperature)

    def edit(self, base: torch.Tensor, values: Sequence[float]) -> torch.Tensor:
        """The chosen latent moved by every slider: attribute strengths, then latent-dimension offsets."""
        if len(values) != len(self._basis):
            raise FacevaeError(f"expected {len(self._basis)} slider values, got {len(values)}")
        v = torch.tensor([float(x or 0.0) for x in values], dtype=torch.float32)
        return base + v @ self._basis

    def encode(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (3, H, W) at the model's size -> posterior mean (D,)."""
        x = torch.from_numpy(np.ascontiguousarray(image)).float().div(255).unsqueeze(0)
        return self.vae.encode(x)[0]

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int, mode: str) -> torch.Tensor:
        return self.vae.interpolate(a, b, steps, mode)

    # ------------------------------------------------------------------ pictures

    def decode(self, z: torch.Tensor) -> np.ndarray:
        """(N, D) codes -> uint8 (N, H, W, 3) images."""
        return to_uint8(self.vae.decode(z)).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------------- one-off loading


def load_attributes(vae: FaceVAE, data, log) -> tuple[list[str], torch.Tensor | None, str]:
    """(names, (A, D) steps or None, note saying why there are none)."""
    if data is not None:
        log(f"attribute vectors: reading the cache or computing them once from {data} ...")
    try:
        bank = vae.attribute_bank
    except FacevaeError as e:
        hint = "" if data is not None else (" Restart `facevae serve` with --data CELEBA_DIR "
                                             "(or set FACEVAE_DATA) to compute them once.")
        return [], None, f"Attribute sliders are off: {e}.{hint}"
    return list(bank.names), bank.steps.float().cpu(), ""


def load_samplers(vae: FaceVAE, components: int = 10) -> tuple[dict, str]:
    """Every registered sampler the model has (or, given data, fits once), prior always included."""
    out: dict = {}
    missing = []
    for name in SAMPLERS:
        try:
            out[name] = vae.sampler(name, components)
        except FacevaeError:
            missing.append(name)
    note = "" if not missing else (f"Not fitted to this model's training latents yet: {', '.join(missing)}. "
                                   "Restart with --data CELEBA_DIR to fit them once.")
    return out, note


@torch.no_grad()
def active_dimensions(model: VAE, latent_dim: int, k: int = ACTIVE_DIMS, n: int = ACTIVITY_SAMPLES,
                      seed: int = 0, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` dimensions whose posterior mean varies most, and the standard deviation of that mean.

    Prior draws are decoded and encoded again: a dimension the decoder ignores
    comes back near 0 whatever was drawn, an active one comes back near its draw.
    """
    from facevae.latent.stats import latent_activity

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent_dim, generator=g)
    means = batched(lambda b: model.encode(model.decode(b)).mean.float(), z, device)
    var = latent_activity(means).float()
    top = torch.argsort(var, descending=True)[:min(k, latent_dim)]
    return top, var[top].sqrt().clamp_min(1e-3)
