"""The model side of the web page: one loaded model with everything an interaction needs, cached.

Everything slow (loading weights, attribute vectors, fitted samplers, the active
latent dimensions) happens once in `Explorer.load`; afterwards each interaction is
at most one small batch through the decoder (or one image through the encoder).
No Gradio here, so the benchmark and the unit tests drive it directly.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.models.forward import batched
from facevae.models.vae import VAE
from facevae.sampling import build_sampler
from facevae.tasks.store import get_sampler
from facevae.modelfiles.checkpoint import Checkpoint

SAMPLER_NAMES = ("prior", "gaussian", "gmm", "two_stage", "diffusion")
ACTIVE_DIMS = 8  # latent sliders shown
ACTIVITY_SAMPLES = 128  # prior draws decoded and re-encoded to rank the dimensions


@dataclass
class Explorer:
    """A model plus its editing directions; methods take and return CPU tensors / uint8 arrays."""

    model: VAE
    cfg: RunConfig
    attr_names: list[str] = field(default_factory=list)
    attr_steps: torch.Tensor | None = None  # (A, D): strength 1 of attribute i adds row i
    attr_note: str = ""  # why there are no attribute sliders, when there are none
    dims: torch.Tensor | None = None  # (K,) the most active latent dimensions, most active first
    dim_scale: torch.Tensor | None = None  # (K,) their spread: slider value 1 moves one spread
    samplers: dict = field(default_factory=dict)  # name -> Sampler
    sampler_note: str = ""
    label: str = "model"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self):
        if not self.samplers:
            self.samplers = {"prior": build_sampler("prior", self.latent_dim)}
        if self.dims is None:
            self.dims, self.dim_scale = active_dimensions(self.model, self.latent_dim, device=self.device)
        self._basis = self._edit_basis()

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(cls, ckpt: str | Path | None, data: str | Path | None = None, device: str = "auto",
             components: int = 10, log=None) -> "Explorer":
        """Load the model and everything cached for it; `data` computes what is missing (once)."""
        from facevae.modelfiles.checkpoint import load_model
        from facevae.modelfiles.device import resolve_device

        log = log or (lambda msg: print(msg, file=sys.stderr))
        dev = resolve_device(device)
        loaded = load_model(ckpt, dev)
        model, cfg = loaded.model, loaded.config
        names, steps, attr_note = load_attributes(loaded, data, dev, log)
        if data is not None:
            log(f"samplers: reading the stored fits or fitting them once on {data} ...")
        samplers, sampler_note = load_samplers(loaded, data, dev, components)
        label = "the bundled CelebA 64x64 model" if loaded.is_bundled else loaded.source
        return cls(model, cfg, names, steps, attr_note, samplers=samplers, sampler_note=sampler_note,
                   label=label, device=dev)

    @property
    def latent_dim(self) -> int:
        return self.cfg.model.latent_dim

    @property
    def image_size(self) -> int:
        return self.cfg.model.image_size

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
        if not (0.0 < temperature <= 3.0):
            raise FacevaeError(f"temperature must be in (0, 3], got {temperature}")
        g = torch.Generator().manual_seed(int(seed) % 2**63)
        return self.samplers[sampler].sample(n, generator=g, temperature=float(temperature)).float().cpu()

    def edit(self, base: torch.Tensor, values: Sequence[float]) -> torch.Tensor:
        """The chosen latent moved by every slider: attribute strengths, then latent-dimension offsets."""
        if len(values) != len(self._basis):
            raise FacevaeError(f"expected {len(self._basis)} slider values, got {len(values)}")
        v = torch.tensor([float(x or 0.0) for x in values], dtype=torch.float32)
        return base + v @ self._basis

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (3, H, W) at the model's size -> posterior mean (D,)."""
        x = torch.from_numpy(np.ascontiguousarray(image)).float().div(255).unsqueeze(0).to(self.device)
        return self.model.encode(x).mean[0].float().cpu()

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int, mode: str) -> torch.Tensor:
        from facevae.latent.interpolate import interpolate

        return interpolate(a, b, steps, mode)

    # ------------------------------------------------------------------ pictures

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        """(N, D) codes -> uint8 (N, H, W, 3) images."""
        out = self.model.decode(z.float().to(self.device)).float().cpu()
        return out.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------------- one-off loading


def load_attributes(ckpt: Checkpoint, data, device, log) -> tuple[list[str], torch.Tensor | None, str]:
    """(names, (A, D) steps or None, note saying why there are none)."""
    from facevae.tasks.edit import attribute_vectors

    if data is not None:
        log(f"attribute vectors: reading the cache or computing them once from {data} ...")
    try:
        names, steps = attribute_vectors(ckpt, data=data, device=device)
    except FacevaeError as e:
        hint = "" if data is not None else (" Restart `facevae serve` with --data CELEBA_DIR "
                                             "(or set FACEVAE_DATA) to compute them once.")
        return [], None, f"Attribute sliders are off: {e}.{hint}"
    return list(names), steps.float().cpu(), ""


def load_samplers(ckpt: Checkpoint, data, device, components: int = 10) -> tuple[dict, str]:
    """Every sampler that `facevae.tasks.store` can give for this model, prior always included."""
    out: dict = {}
    missing = []
    for name in SAMPLER_NAMES:
        try:
            out[name] = get_sampler(ckpt, name=name, components=components, data=data, device=device)
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
