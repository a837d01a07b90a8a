"""Python API for generating and reconstructing faces with a trained model."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from facevae.data import load_image, open_dataset
from facevae.errors import FacevaeError
from facevae.models.forward import batched
from facevae.models.vae import VAE
from facevae.modelfiles.checkpoint import load_model
from facevae.modelfiles.device import resolve_device


def decode_batched(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Latents to float images in [0, 1] on the CPU (decoded on z's device)."""
    return batched(lambda b: model.decode(b).float(), z, z.device)


def generate(ckpt: str | Path | None = None, *, n: int = 64, seed: int = 0, temperature: float = 1.0,
             sampler: str = "prior", components: int = 10, data: str | Path | None = None,
             device: str = "auto") -> torch.Tensor:
    """`n` new faces as float (n, 3, H, W) in [0, 1] from the prior or a fitted sampler."""
    dev = resolve_device(device)
    loaded = load_model(ckpt, dev)
    model, cfg = loaded.model, loaded.config
    from facevae.tasks.store import get_sampler

    s = get_sampler(loaded, name=sampler, components=components, data=data, device=dev)
    g = torch.Generator().manual_seed(seed)  # a CPU generator: the same seed, the same faces on CPU and GPU
    z = s.sample(n, generator=g, temperature=temperature)
    return decode_batched(model, z.to(dev))


def read_images(paths: Sequence[str | Path], size: int, crop: int) -> torch.Tensor:
    """Image files as uint8 (N, 3, size, size), cropped and resized like the training data."""
    if not paths:
        raise FacevaeError("no images given: pass --images FILE (repeatable)")
    return torch.stack([torch.from_numpy(load_image(Path(p), size, crop)) for p in paths])


def first_images(data: str | Path, split: str, n: int, size: int, crop: int) -> torch.Tensor:
    """The first `n` images of a split, read straight from the files (no cache build for a handful)."""
    ds = open_dataset(data)
    idx = ds.split_indices(split)[:n]
    return read_images(ds.paths(idx), size, crop)


@torch.no_grad()
def reconstruct(ckpt: str | Path | None = None, *, images: Sequence[str | Path] = (), data: str | Path | None = None,
                split: str = "valid", n: int = 8, device: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """(originals, reconstructions), float in [0, 1] on the CPU; reconstructions decode the posterior mean."""
    dev = resolve_device(device)
    loaded = load_model(ckpt, dev)
    model, cfg = loaded.model, loaded.config
    size, crop = cfg.model.image_size, cfg.data.crop
    x8 = read_images(images, size, crop) if images else first_images(data, split, n, size, crop)
    x = x8.float().div(255)
    recon = batched(lambda b: model(b, sample=False).recon.float(), x, dev)
    return x, recon
