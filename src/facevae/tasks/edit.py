"""Editing faces along CelebA attribute vectors, and those vectors computed once per checkpoint.

Vectors (`facevae.latent.attributes` has the math) are cached (safetensors) beside
the checkpoint, keyed by the weights file's hash and the data's content (file list,
splits, attributes, preprocessing; not its path); for the bundled model they are read
from the package (when shipped) or cached in the user cache dir.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.io import atomic_write, user_cache
from facevae.latent.attributes import AttributeBank, compute_bank, edit_latents
from facevae.models.forward import batched
from facevae.models.vae import VAE
from facevae.phase import phase
from facevae.modelfiles.checkpoint import BUNDLED, WEIGHTS, Checkpoint

CACHE_NAME = "attribute_vectors.safetensors"
FORMAT = "facevae-attributes-1"


# ---------------------------------------------------------------------------- cache

def cache_paths(ckpt: Checkpoint) -> tuple[list[Path], Path]:
    """(places to read from, in order; the place to write)."""
    if ckpt.is_bundled:
        shipped = ckpt.weights.with_name(f"{BUNDLED}.{CACHE_NAME}")
        user = user_cache("attributes") / f"{BUNDLED}-{ckpt.digest[:16]}.safetensors"
        return [shipped, user], user
    name = CACHE_NAME if ckpt.weights.name == WEIGHTS else f"{ckpt.weights.stem}.{CACHE_NAME}"
    return [ckpt.run_dir / name], ckpt.run_dir / name


def _read_cache(path: Path, digest: str, data_key: str | None) -> AttributeBank | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT or meta.get("weights") != digest:
            return None
        if data_key is not None and meta.get("data") != data_key:
            return None
        t = load_file(str(path))
        return AttributeBank(json.loads(meta["names"]), t["directions"], t["spread"], t["positives"], t["negatives"])
    except (SafetensorError, OSError, ValueError, KeyError):
        return None  # a damaged cache is recomputed, not fatal


def data_key(ds, cfg: RunConfig) -> str:
    """What the vectors depend on in the data: file list, splits, attribute rows and preprocessing.

    Not the folder's path, so an identical copy of the data anywhere reuses them.
    """
    from facevae.data.cache import DRAFT_VERSION

    def sha1(data: bytes) -> str:
        return hashlib.sha1(data).hexdigest()

    ident = json.dumps({"files": sha1("\n".join(ds.filenames).encode()), "partition": sha1(ds.partition.tobytes()),
                        "attrs": sha1(ds.attributes.tobytes()), "size": cfg.model.image_size, "crop": cfg.data.crop,
                        "draft": DRAFT_VERSION if cfg.data.draft else False}, sort_keys=True)
    return f"{cfg.model.image_size}px-{sha1(ident.encode())[:16]}"


def attribute_bank(ckpt: Checkpoint, data: str | Path | None = None, device: str | torch.device = "cpu",
                   progress: bool = True, any_cached: bool = False) -> AttributeBank:
    """The checkpoint's attribute vectors: from the cache, or computed from `data`'s training split and cached.

    With `data` None only a cache made for these exact weights is used; with `data`,
    the cache must also have been made from that data, else the vectors are recomputed.
    With `any_cached`, vectors cached for these weights (the shipped ones of the bundled
    model) are used whatever data made them, and `data` is read only when there are none.
    """
    cfg, digest = ckpt.config, ckpt.digest
    reads, write = cache_paths(ckpt)
    if data is None or any_cached:
        bank = _first_cached(reads, digest, None)
        if bank is not None:
            return bank
        if data is None:
            raise FacevaeError("no attribute vectors are cached for this checkpoint yet: give the CelebA folder "
                               "(--attr-data DIR, or --data DIR) to compute them once from its training split")
    ds = _attribute_dataset(data, cfg)
    key = data_key(ds, cfg)
    bank = _first_cached(reads, digest, key)
    if bank is not None:
        return bank
    bank = _compute_from_data(ckpt.model, cfg, data, ds, device, progress)
    meta = {"format": FORMAT, "weights": digest, "data": key, "names": json.dumps(bank.names), "split": "train"}
    atomic_write(write, lambda tmp: save_file(bank.tensors(), str(tmp), metadata=meta))
    return bank


def _first_cached(paths: list[Path], digest: str, key: str | None) -> AttributeBank | None:
    return next((bank for bank in (_read_cache(p, digest, key) for p in paths) if bank is not None), None)


def _attribute_dataset(data: str | Path, cfg: RunConfig):
    from facevae.data import open_dataset

    ds = open_dataset(data, cfg.data.val_fraction)
    if not ds.is_celeba:
        raise FacevaeError(f"{data} has no CelebA attribute file (list_attr_celeba.txt): attribute vectors "
                           "need the CelebA folder (--attr-data DIR)")
    # the vectors come from the training split: say which option to change when there is none
    ds.split_indices("train", flag="--attr-data (a CelebA folder with training images)")
    return ds


def _compute_from_data(model: VAE, cfg: RunConfig, data, ds, device, progress: bool) -> AttributeBank:
    from facevae.tasks.encode import encode_images, load_split

    _, idx, images = load_split(data, "train", cfg, progress=progress)
    with phase(f"attribute vectors: encoding {len(images):,} training images", progress):
        means, _ = encode_images(model, images, device)
    attrs = torch.from_numpy(ds.attributes[idx.numpy()].astype("int64"))
    return compute_bank(means, attrs, ds.attr_names)


def attribute_vectors(ckpt: Checkpoint, data: str | Path | None = None, device: str | torch.device = "cpu",
                      progress: bool = True) -> tuple[list[str], torch.Tensor]:
    """(40 names, (40, D) float32 steps) for the web app: z + s * steps[i] edits attribute i with strength s."""
    bank = attribute_bank(ckpt, data=data, device=device, progress=progress)
    return bank.names, bank.steps


# ---------------------------------------------------------------------------- editing faces

@dataclass
class FaceEdit:
    originals: torch.Tensor  # (N, 3, H, W) float in [0, 1]
    faces: torch.Tensor  # (N, S, 3, H, W): row i, column j = face i edited with strength j
    attributes: list[tuple[str, float]]  # canonical names with their weights
    strengths: list[float]

    @property
    def title(self) -> str:
        return " + ".join(name if w == 1 else f"{w:g} x {name}" for name, w in self.attributes)


@torch.no_grad()
def edit_faces(ckpt: str | Path | None, attributes: Sequence[tuple[str, float]], strengths: Sequence[float], *,
               images: Sequence[str | Path] = (), data: str | Path | None = None, split: str = "valid", n: int = 8,
               attr_data: str | Path | None = None, device: str = "auto") -> FaceEdit:
    """Faces edited along attribute directions, float in [0, 1] on the CPU.

    Edit s of a face is decode(mu + s * sum_a(w_a * step_a)): the weighted attributes
    form one combined edit and the strengths scale all of it together.
    """
    from facevae.tasks.generate import decode_batched, read_images
    from facevae.tasks.generate import first_images
    from facevae.modelfiles.checkpoint import load_model
    from facevae.modelfiles.device import resolve_device

    if bool(images) == (data is not None):
        raise FacevaeError("give either --images FILE ... or --data DIR (with --split and --n), not both or neither")
    dev = resolve_device(device)
    loaded = load_model(ckpt, dev)
    model, cfg = loaded.model, loaded.config
    # without --attr-data, --data is the faces to edit: vectors cached for the weights serve, whatever made them
    bank = attribute_bank(loaded, data=attr_data if attr_data is not None else data, device=dev,
                          any_cached=attr_data is None)
    vector = bank.vector(attributes)
    named = [(bank.names[bank.index(name)], float(w)) for name, w in attributes]
    size, crop = cfg.model.image_size, cfg.data.crop
    x8 = read_images(images, size, crop) if images else first_images(data, split, n, size, crop)
    x = x8.float().div(255)
    mu = batched(lambda b: model.encode(b).mean.float(), x, dev)
    z = edit_latents(mu, vector, strengths)
    out = decode_batched(model, z.reshape(-1, z.shape[-1]).to(dev))
    return FaceEdit(x, out.view(len(x), len(strengths), *out.shape[1:]), named, list(strengths))
