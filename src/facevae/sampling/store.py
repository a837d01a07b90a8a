"""Fitted samplers kept beside their checkpoint, fitted on the training latents on first use.

A run folder gets `samplers/<name>[-k<K>]-<weights id>.safetensors`; the weights id
changes when the run trains further, so a stale fit is never reused. The bundled
model looks first in the package (shipped fits), then in the user cache.
"""
from __future__ import annotations

from pathlib import Path

import torch

from facevae.config import RunConfig
from facevae.data.cache import default_cache_dir
from facevae.errors import FacevaeError
from facevae.models.vae import VAE
from facevae.phase import fit_line, phase
from facevae.sampling.base import Sampler
from facevae.sampling.registry import build_sampler, sampler_class
from facevae.sampling.serialize import load_sampler, save_sampler
from facevae.training.checkpoint import bundled_weights, resolve_weights, weights_digest

FITTED_OPTIONS = {"gmm": "components"}


def weights_id(ckpt: str | Path | None) -> str:
    return weights_digest(resolve_weights(ckpt))[:12]


def store_dirs(ckpt: str | Path | None) -> list[Path]:
    """Where fitted artefacts of a checkpoint are looked up, the writable one last."""
    path = None if ckpt is None else Path(ckpt).expanduser()
    if path is None or path.resolve() == bundled_weights().resolve():
        return [bundled_weights().parent, default_cache_dir() / "bundled"]
    return [(path if path.is_dir() else path.parent) / "samplers"]


def sampler_file(name: str, components: int, ckpt: str | Path | None) -> str:
    k = f"-k{components}" if name in FITTED_OPTIONS else ""
    return f"{name}{k}-{weights_id(ckpt)}.safetensors"


def get_sampler(ckpt: str | Path | None, model: VAE, cfg: RunConfig, *, name: str = "prior", components: int = 10,
                data: str | Path | None = None, device: torch.device | str = "cpu",
                progress: bool = True) -> Sampler:
    """A fitted sampler for this checkpoint: loaded when stored, else fitted on `data`'s training split."""
    sampler_class(name)  # an unknown name fails here, with a suggestion
    if name == "prior":
        return build_sampler("prior", cfg.model.latent_dim).to(device)
    fname = sampler_file(name, components, ckpt)
    for folder in store_dirs(ckpt):
        if (folder / fname).is_file():
            return load_sampler(folder / fname, device)
    if data is None:
        raise FacevaeError(f"the {name} sampler is not fitted for this checkpoint yet: pass --data DIR "
                           "(its training data) once to fit it on the training latents")
    sampler = fit_sampler(name, components, model, cfg, data, device, progress)
    save_sampler(sampler, store_dirs(ckpt)[-1] / fname)
    return sampler


def fit_sampler(name: str, components: int, model: VAE, cfg: RunConfig, data: str | Path,
                device: torch.device | str, progress: bool = True) -> Sampler:
    from facevae.latent.encode import encode_images, split_images

    _, _, images = split_images(data, "train", cfg, progress=progress)
    with phase(f"encoding {len(images):,} training images", progress):
        means, _ = encode_images(model, images, device)
    sampler = build_sampler(name, cfg.model.latent_dim, **fit_options(name, components))
    with phase(fit_line(sampler, len(means)), progress):
        return sampler.fit(means.to(device))


def fit_options(name: str, components: int) -> dict[str, int]:
    """Constructor options a stored fit of `name` is made with (the GMM's component count)."""
    return {FITTED_OPTIONS[name]: components} if name in FITTED_OPTIONS else {}
