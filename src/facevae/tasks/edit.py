"""`facevae edit`: faces moved along CelebA attribute directions, one column per strength.

The directions and their cache are `facevae.modelfiles.attributes`; the math is
`facevae.latent.attributes`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from facevae.errors import FacevaeError
from facevae.latent.attributes import edit_latents
from facevae.tasks.generate import ModelLike, as_model, input_faces


@dataclass
class FaceEdit:
    originals: torch.Tensor  # (N, 3, H, W) float in [0, 1]
    faces: torch.Tensor  # (N, S, 3, H, W): row i, column j = face i edited with strength j
    attributes: list[tuple[str, float]]  # canonical names with their weights
    strengths: list[float]

    @property
    def title(self) -> str:
        return " + ".join(name if w == 1 else f"{w:g} x {name}" for name, w in self.attributes)


def edit_faces(model: ModelLike, attributes: Sequence[tuple[str, float]], strengths: Sequence[float], *,
               images: Sequence[str | Path] = (), data: str | Path | None = None, split: str = "valid", n: int = 8,
               attr_data: str | Path | None = None, device: str = "auto", align: bool | None = None,
               face: int | None = None) -> FaceEdit:
    """Faces edited along attribute directions, float in [0, 1] on the CPU.

    Edit s of a face is decode(mu + s * sum_a(w_a * step_a)): the weighted attributes
    form one combined edit and the strengths scale all of it together. Without
    `attr_data`, vectors cached for the weights serve, else they come from `data`.
    Photos from `images` are aligned to the CelebA template as `read_images` says (`align`, `face`).
    """
    bad = [v for v in [*strengths, *(w for _, w in attributes)] if not math.isfinite(v)]
    if bad:
        raise FacevaeError(f"strengths and attribute weights must be finite numbers, got {bad[0]}")
    vae = as_model(model, device, data)
    bank = vae.attribute_bank if attr_data is None else vae.attributes_from(attr_data)
    vector = bank.vector(attributes)
    named = [(bank.names[bank.index(name)], float(w)) for name, w in attributes]
    x = input_faces(vae, images, data, split, n, align, face)
    z = edit_latents(vae.encode(x), vector, strengths)
    out = vae.decode(z.reshape(-1, z.shape[-1]))
    return FaceEdit(x, out.view(len(x), len(strengths), *out.shape[1:]), named, list(strengths))
