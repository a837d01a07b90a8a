"""`facevae interpolate`: faces along a path between two encoded images or two prior draws."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from facevae.errors import FacevaeError
from facevae.latent.interpolate import INTERPOLATIONS
from facevae.tasks.generate import ModelLike, as_model, read_images


def interpolate_faces(model: ModelLike, *, images: Sequence[str | Path] = (), seed: int | None = None,
                      pairs: int = 1, mode: str = "slerp", steps: int = 8,
                      device: str = "auto", align: bool | None = None,
                      face: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(faces (steps, pairs, 3, H, W), originals (2, 3, H, W) or None), float in [0, 1] on the CPU.

    With two images the path joins their posterior means (one pair); with a seed,
    `pairs` pairs of N(0, I) draws. The two photos are aligned as `read_images` says (`align`, `face`).
    """
    if bool(images) == (seed is not None):
        raise FacevaeError("give either --images A B or --seed S, not both or neither")
    if images and len(images) != 2:
        raise FacevaeError(f"--images takes exactly two files (the two ends), got {len(images)}: "
                           "--images A.jpg B.jpg")
    if mode not in INTERPOLATIONS:
        raise FacevaeError(f"unknown interpolation mode {mode!r}; choose one of: {', '.join(INTERPOLATIONS)}")
    if steps < 2:
        raise FacevaeError(f"--steps must be at least 2 (the two ends), got {steps}")
    vae = as_model(model, device)
    originals = None
    if images:
        originals = read_images(images, vae.image_size, vae.config.data.crop, align, face).float().div(255)
        z = vae.encode(originals)
        z0, z1 = z[:1], z[1:]
    else:
        z = vae.sample_latents(2 * pairs, seed=seed).view(2, pairs, -1)
        z0, z1 = z[0], z[1]
    path = vae.interpolate(z0, z1, steps, mode)
    faces = vae.decode(path.reshape(-1, path.shape[-1]))
    return faces.view(steps, len(z0), *faces.shape[1:]), originals
