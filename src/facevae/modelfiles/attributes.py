"""CelebA attribute vectors of a checkpoint, computed once and cached beside it.

The math is `facevae.latent.attributes`. Vectors are cached (safetensors) beside the
checkpoint, keyed by the weights file's hash and the data's content (file list,
splits, attributes, preprocessing; not its path); for the bundled model they are read
from the package (when shipped) or cached in the user cache dir.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.io import atomic_write, user_cache
from facevae.latent.attributes import AttributeBank, compute_bank
from facevae.models.vae import VAE
from facevae.phase import phase
from facevae.runfolder import ATTRIBUTE_VECTORS
from facevae.modelfiles.checkpoint import WEIGHTS, Checkpoint

FORMAT = "facevae-attributes-1"


def cache_paths(ckpt: Checkpoint) -> tuple[list[Path], Path]:
    """(places to read from, in order; the place to write)."""
    if ckpt.is_bundled:
        name = ckpt.weights.stem  # the bundled model's name
        shipped = ckpt.weights.with_name(f"{name}.{ATTRIBUTE_VECTORS}")
        user = user_cache("attributes") / f"{name}-{ckpt.digest[:16]}.safetensors"
        return [shipped, user], user
    name = ATTRIBUTE_VECTORS if ckpt.weights.name == WEIGHTS else f"{ckpt.weights.stem}.{ATTRIBUTE_VECTORS}"
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
    from facevae.data.encode import encode_images, load_split

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
