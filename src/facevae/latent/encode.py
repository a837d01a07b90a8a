"""Encode a split into posterior parameters, cached beside the checkpoint."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from facevae.config import RunConfig
from facevae.data import FaceDataset, load_images, open_dataset
from facevae.data.loader import iterate_fixed
from facevae.io import atomic_write
from facevae.models.vae import VAE


def load_split(data: str | Path, split: str, cfg: RunConfig, progress: bool = True) -> tuple[FaceDataset, torch.Tensor, torch.Tensor]:
    """(dataset, indices, uint8 images (N, 3, H, W)) of one split, through the preprocessed cache."""
    ds = open_dataset(data, cfg.data.val_fraction)
    images = load_images(ds, cfg.model.image_size, cfg.data.crop, cfg.data.draft, workers=cfg.data.workers,
                         progress=progress)
    idx = ds.split_indices(split)
    return ds, torch.from_numpy(idx), torch.from_numpy(images[idx])


@torch.no_grad()
def encode_images(model: VAE, images: torch.Tensor, device: torch.device | str = "cpu",
                  batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(means, logvars) as float32 CPU tensors (N, latent) for uint8 or [0,1] float images."""
    model.eval()
    means, logvars = [], []
    if images.dtype == torch.uint8:
        batches = iterate_fixed(images, batch_size, torch.device(device))
    else:
        batches = (images[i:i + batch_size].to(device) for i in range(0, len(images), batch_size))
    for x in batches:
        post = model.encode(x)
        means.append(post.mean.float().cpu())
        logvars.append(post.logvar.float().cpu())
    return torch.cat(means), torch.cat(logvars)


def cached_latents(model: VAE, images: torch.Tensor, cache_path: Path | None, key: str,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """encode_images, stored as safetensors at cache_path when the key (data + split + weights) matches."""
    if cache_path is not None and cache_path.is_file():
        from safetensors import safe_open

        with safe_open(str(cache_path), framework="pt") as f:
            if (f.metadata() or {}).get("key") == key:
                t = load_file(str(cache_path))
                return t["mean"], t["logvar"]
    mean, logvar = encode_images(model, images, device)
    if cache_path is not None:
        atomic_write(cache_path, lambda tmp: save_file({"mean": mean, "logvar": logvar}, str(tmp), metadata={"key": key}))
    return mean, logvar
