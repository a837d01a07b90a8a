"""Encode a split into posterior parameters, cached beside the checkpoint."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from facevae.config import RunConfig
from facevae.data import FaceDataset, load_images, open_dataset
from facevae.data.loader import to_float
from facevae.models.forward import FORWARD_BATCH, batched
from facevae.io import atomic_write
from facevae.models.vae import VAE


def load_split(data: str | Path, split: str, cfg: RunConfig, progress: bool = True) -> tuple[FaceDataset, torch.Tensor, torch.Tensor]:
    """(dataset, indices, uint8 images (N, 3, H, W)) of one split, through the preprocessed cache."""
    ds = open_dataset(data, cfg.data.val_fraction)
    images = load_images(ds, cfg, progress=progress)
    idx = ds.split_indices(split)
    return ds, torch.from_numpy(idx), torch.from_numpy(images[idx])


@torch.no_grad()
def encode_images(model: VAE, images: torch.Tensor, device: torch.device | str = "cpu",
                  batch_size: int = FORWARD_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(means, logvars) as float32 CPU tensors (N, latent) for uint8 or [0,1] float images."""
    model.eval()

    def params(x: torch.Tensor) -> torch.Tensor:
        post = model.encode(to_float(x) if x.dtype == torch.uint8 else x)
        return torch.stack([post.mean.float(), post.logvar.float()], dim=1)

    mean, logvar = batched(params, images, device, batch_size).unbind(1)
    return mean.contiguous(), logvar.contiguous()


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
