"""Fitted samplers kept beside their checkpoint, fitted on the training latents on first use.

A run folder gets `samplers/<name>[-k<K>]-<weights id>.safetensors`; the weights id
changes when the run trains further, so a stale fit is never reused. The bundled
model looks first in the package (shipped fits), then in the user cache.
"""
from __future__ import annotations

from pathlib import Path

import torch

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.io import user_cache
from facevae.models.vae import VAE
from facevae.phase import fit_line, phase
from facevae.runfolder import RunFolder
from facevae.sampling.base import Sampler
from facevae.sampling.registry import build_sampler, sampler_class
from facevae.modelfiles.sampler_files import load_sampler, save_sampler
from facevae.modelfiles.checkpoint import Checkpoint


def store_dirs(ckpt: Checkpoint) -> list[Path]:
    """Where fitted artefacts of a checkpoint are looked up, the writable one last."""
    if ckpt.is_bundled:
        return [ckpt.weights.parent, user_cache("bundled")]
    return [RunFolder(ckpt.run_dir).samplers_dir] if ckpt.run_dir is not None else []  # an in-memory model keeps nothing


def sampler_file(name: str, components: int, ckpt: Checkpoint) -> str:
    k = f"-k{components}" if sampler_class(name).stored_option else ""
    return f"{name}{k}-{ckpt.weights_id}.safetensors"


def get_sampler(ckpt: Checkpoint, *, name: str = "prior", components: int = 10, data: str | Path | None = None,
                device: torch.device | str = "cpu", progress: bool = True) -> Sampler:
    """A fitted sampler for this checkpoint: loaded when stored, else fitted on `data`'s training split."""
    if not sampler_class(name).fits_latents:  # an unknown name fails here, with a suggestion
        return build_sampler(name, ckpt.config.model.latent_dim).to(device)
    fname = sampler_file(name, components, ckpt)
    for folder in store_dirs(ckpt):
        if (folder / fname).is_file():
            return load_sampler(folder / fname, device)
    if data is None:
        raise FacevaeError(f"the {name} sampler is not fitted for this checkpoint yet: pass --data DIR "
                           "(its training data) once to fit it on the training latents")
    sampler = fit_sampler(name, components, ckpt.model, ckpt.config, data, device, progress)
    if store_dirs(ckpt):
        save_sampler(sampler, store_dirs(ckpt)[-1] / fname)
    return sampler


def fit_sampler(name: str, components: int, model: VAE, cfg: RunConfig, data: str | Path,
                device: torch.device | str, progress: bool = True) -> Sampler:
    return fit_on_latents(name, components, train_latents(model, cfg, data, device, progress), device, progress)


def train_latents(model: VAE, cfg: RunConfig, data: str | Path, device: torch.device | str,
                  progress: bool = True) -> torch.Tensor:
    """Posterior means of the training split: what every latent sampler is fitted on."""
    from facevae.data.encode import encode_images, load_split

    _, _, images = load_split(data, "train", cfg, progress=progress)
    with phase(f"encoding {len(images):,} training images", progress):
        means, _ = encode_images(model, images, device)
    return means


def fit_on_latents(name: str, components: int, means: torch.Tensor, device: torch.device | str,
                   progress: bool = True) -> Sampler:
    """Fit `name` on given posterior means, so several samplers can share one encoding pass."""
    sampler = build_sampler(name, means.shape[1], **fit_options(name, components))
    with phase(fit_line(sampler, len(means)), progress):
        return sampler.fit(means.to(device))


def fit_options(name: str, components: int) -> dict[str, int]:
    """Constructor options a stored fit of `name` is made with (the GMM's component count)."""
    option = sampler_class(name).stored_option
    return {option: components} if option else {}
