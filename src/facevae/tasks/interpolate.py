"""`facevae interpolate`: faces along a path between two encoded images or two prior draws."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from facevae.errors import FacevaeError
from facevae.latent.interpolate import INTERPOLATIONS, interpolate


@torch.no_grad()
def interpolate_faces(ckpt: str | Path | None, *, images: Sequence[str | Path] = (), seed: int | None = None,
                      pairs: int = 1, mode: str = "slerp", steps: int = 8,
                      device: str = "auto") -> tuple[torch.Tensor, torch.Tensor | None]:
    """(faces (steps, pairs, 3, H, W), originals (2, 3, H, W) or None), float in [0, 1] on the CPU.

    With two images the path joins their posterior means (one pair); with a seed,
    `pairs` pairs of N(0, I) draws.
    """
    from facevae.tasks.generate import decode_batched, read_images
    from facevae.modelfiles.checkpoint import load_model
    from facevae.modelfiles.device import resolve_device

    if bool(images) == (seed is not None):
        raise FacevaeError("give either --images A B or --seed S, not both or neither")
    if images and len(images) != 2:
        raise FacevaeError(f"--images takes exactly two files (the two ends), got {len(images)}: "
                           "--images A.jpg B.jpg")
    if mode not in INTERPOLATIONS:
        raise FacevaeError(f"unknown interpolation mode {mode!r}; choose one of: {', '.join(INTERPOLATIONS)}")
    dev = resolve_device(device)
    loaded = load_model(ckpt, dev)
    model, cfg = loaded.model, loaded.config
    originals = None
    if images:
        originals = read_images(images, cfg.model.image_size, cfg.data.crop).float().div(255)
        mu = model.encode(originals.to(dev)).mean.float().cpu()
        z0, z1 = mu[:1], mu[1:]
    else:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(2, pairs, cfg.model.latent_dim, generator=g)
        z0, z1 = z[0], z[1]
    path = interpolate(z0, z1, steps, mode)
    faces = decode_batched(model, path.reshape(-1, path.shape[-1]).to(dev))
    return faces.view(steps, len(z0), *faces.shape[1:]), originals
