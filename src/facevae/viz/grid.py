"""Image grids as PNG files (uint8 throughout, so a saved grid shows exact pixels)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from facevae.io import atomic_write


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1], (N, 3, H, W) -> uint8 with round-to-nearest."""
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile (N, 3, H, W) images, float in [0, 1] or uint8, into an (H', W', 3) uint8 array, row-major."""
    imgs = images if images.dtype == torch.uint8 else to_uint8(images)
    imgs = imgs.cpu()
    n, c, h, w = imgs.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    out = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        out[y:y + h, x:x + w] = imgs[i].permute(1, 2, 0).numpy()
    return out


def save_image(array: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(path.suffix.lower(), "PNG")
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format=fmt))
    return path


def save_grid(images: torch.Tensor | Sequence[torch.Tensor], path: str | Path, nrow: int | None = None) -> Path:
    """Float images in [0, 1] (N, 3, H, W), or a list of such batches, as one PNG (or .jpg/.webp) grid."""
    batch = images if isinstance(images, torch.Tensor) else torch.cat([b.float().cpu() for b in images])
    return save_image(make_grid(batch, nrow), path)


def to_pil(images: torch.Tensor) -> Image.Image | list[Image.Image]:
    """One image (3, H, W) -> a PIL image; a batch (N, 3, H, W) -> a list of them."""
    if images.ndim == 3:
        return Image.fromarray(to_uint8(images[None])[0].permute(1, 2, 0).numpy())
    return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in to_uint8(images)]


def pairs_grid(originals: torch.Tensor, recons: torch.Tensor, per_row: int = 8) -> np.ndarray:
    """Originals above their reconstructions, `per_row` faces per row pair."""
    rows = []
    for start in range(0, len(originals), per_row):
        rows += [originals[start:start + per_row], recons[start:start + per_row]]
    width = min(per_row, len(originals))
    padded = [torch.cat([r.float(), torch.ones(width - len(r), *r.shape[1:])]) if len(r) < width else r.float()
              for r in rows]
    return make_grid(torch.cat(padded), nrow=width)
