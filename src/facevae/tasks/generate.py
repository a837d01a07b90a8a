"""Faces from a model in one call each: new faces, reconstructions, and the images they start from.

Each task takes a loaded `FaceVAE` (or anything `facevae.load` takes, loaded once here).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Sequence, Union

import torch

from facevae.api import FaceVAE, load
from facevae.data import open_dataset
from facevae.data.photos import prepared_photo_notes, resolve_align
from facevae.errors import FacevaeError

ModelLike = Union[FaceVAE, str, Path, None]


def as_model(model: ModelLike, device: str = "auto", data: str | Path | None = None) -> FaceVAE:
    """`model` itself (on its own device), or the model a source names, loaded once; `data` fits what it lacks.

    A given FaceVAE is never changed: with `data` a shallow copy (sharing its loaded
    samplers and vectors) carries it.
    """
    if not isinstance(model, FaceVAE):
        return load(model, device=device, data=data)
    if data is None or data == model.data:
        return model
    view = copy.copy(model)
    view.data = data
    return view


def generate(model: ModelLike = None, *, n: int = 64, seed: int = 0, temperature: float = 1.0,
             sampler: str = "prior", components: int = 10, data: str | Path | None = None,
             device: str = "auto") -> torch.Tensor:
    """`n` new faces as float (n, 3, H, W) in [0, 1] from the prior or a fitted sampler."""
    return as_model(model, device, data).sample(n, sampler=sampler, temperature=temperature, seed=seed,
                                                components=components)


def read_images(paths: Sequence[str | Path], size: int, crop: int, align: bool | None = None,
                face: int | None = None, notes: bool = True) -> torch.Tensor:
    """Photos as uint8 (N, 3, size, size), read like every user photo (`data/photos.py`).

    `align` None aligns each face to the CelebA template when the align extra is installed;
    `face` picks the face in each photo (0 the largest). With `notes`, a photo the crop serves
    badly (too small for the model, landscape) gets the web page's note on stderr.
    """
    if not paths:
        raise FacevaeError("no images given: pass --images FILE (repeatable)")
    align = resolve_align(align, face)
    faces = []
    for path in paths:
        x, said = prepared_photo_notes(path, size, crop, align, face)
        for note in said if notes else ():
            print(f"note: {path}: {note}", file=sys.stderr)
        faces.append(torch.from_numpy(x))
    return torch.stack(faces)


def first_images(data: str | Path, split: str, n: int, size: int, crop: int) -> torch.Tensor:
    """The first `n` images of a split, read straight from the files (no cache build for a handful)."""
    ds = open_dataset(data)
    idx = ds.split_indices(split)[:n]
    return read_images(ds.paths(idx), size, crop, align=False, notes=False)  # CelebA's files: aligned, CelebA-shaped


def input_faces(vae: FaceVAE, images: Sequence[str | Path] = (), data: str | Path | None = None,
                split: str = "valid", n: int = 8, align: bool | None = None, face: int | None = None) -> torch.Tensor:
    """Float (N, 3, H, W) in [0, 1]: the given photos (aligned as `read_images`), else the first `n` faces of `data`."""
    if bool(images) == (data is not None):
        raise FacevaeError("give either --images FILE ... or --data DIR (with --split and --n), not both or neither")
    size, crop = vae.image_size, vae.config.data.crop
    x8 = read_images(images, size, crop, align, face) if images else first_images(data, split, n, size, crop)
    return x8.float().div(255)


def reconstruct(model: ModelLike = None, *, images: Sequence[str | Path] = (), data: str | Path | None = None,
                split: str = "valid", n: int = 8, device: str = "auto", align: bool | None = None,
                face: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(originals, reconstructions), float in [0, 1] on the CPU; reconstructions decode the posterior mean.

    Photos from `images` are aligned as `read_images` says; CelebA's from `data` never again.
    """
    vae = as_model(model, device)
    x = input_faces(vae, images, data, split, n, align, face)
    return x, vae.reconstruct(x)
