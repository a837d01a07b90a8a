"""CelebA attribute vectors in latent space, and editing faces along them.

The direction of attribute a is mean(mu | a = +1) - mean(mu | a = -1) over the
training split's posterior means. Edits use a *step* per attribute: the unit
direction times the standard deviation of the training means projected on it,
so strength 1 moves a face by one typical population spread along that
attribute, whatever the attribute (Male and Eyeglasses have very different raw
difference lengths). Strengths of +-3 reach the edge of the data.

Vectors are computed once per checkpoint and cached (safetensors) beside it,
keyed by the weights file's hash and the data's content (file list, splits,
attributes, preprocessing; not its path); for the bundled model they are read
from the package (when shipped) or cached in the user cache dir.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from facevae.config import RunConfig
from facevae.errors import FacevaeError, did_you_mean
from facevae.io import atomic_write
from facevae.models.vae import VAE
from facevae.phase import phase

CACHE_NAME = "attribute_vectors.safetensors"
FORMAT = "facevae-attributes-1"


# ---------------------------------------------------------------------------- pure math

def attribute_directions(means: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """(A, D) float32: per attribute, the mean of `means` over rows with +1 minus the mean over rows with -1.

    means: (N, D) float; attributes: (N, A) of +1/-1. An attribute that never (or
    always) holds has no contrast and gets a zero row.
    """
    if means.ndim != 2 or attributes.ndim != 2 or len(means) != len(attributes):
        raise FacevaeError(f"means {tuple(means.shape)} and attributes {tuple(attributes.shape)} must be "
                           "N x D and N x A with the same N")
    mu = means.double()
    pos = (attributes > 0).double()
    neg = (attributes < 0).double()
    n_pos, n_neg = pos.sum(0), neg.sum(0)
    mean_pos = pos.T @ mu / n_pos.clamp_min(1).unsqueeze(1)
    mean_neg = neg.T @ mu / n_neg.clamp_min(1).unsqueeze(1)
    valid = ((n_pos > 0) & (n_neg > 0)).unsqueeze(1)
    return torch.where(valid, mean_pos - mean_neg, torch.zeros_like(mean_pos)).float()


def unit_directions(directions: torch.Tensor) -> torch.Tensor:
    """Rows scaled to length 1 (zero rows stay zero)."""
    norm = directions.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, directions / norm.clamp_min(1e-12), directions)


def projection_spread(means: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """(A,) standard deviation of the means projected on each unit direction."""
    proj = means.double() @ unit_directions(directions.double()).T
    return proj.std(dim=0, unbiased=True).float()


def edit_latents(mu: torch.Tensor, vector: torch.Tensor, strengths: Sequence[float]) -> torch.Tensor:
    """(N, S, D): each latent in `mu` moved by every strength times `vector`."""
    s = torch.as_tensor(list(strengths), dtype=mu.dtype, device=mu.device)
    return mu.unsqueeze(1) + s.view(1, -1, 1) * vector.to(mu).view(1, 1, -1)


# ---------------------------------------------------------------------------- names

def attribute_index(names: Sequence[str], name: str) -> int:
    """Position of `name` in `names`, case-insensitively; FacevaeError listing the valid names otherwise."""
    lower = [n.lower() for n in names]
    key = name.strip().lower()
    if key in lower:
        return lower.index(key)
    raise FacevaeError(f"unknown attribute {name!r}{did_you_mean(name, names)}; valid names: {', '.join(names)}")


def parse_attribute_weights(items: Sequence[str]) -> list[tuple[str, float]]:
    """['Smiling=1.5', 'Eyeglasses'] -> [('Smiling', 1.5), ('Eyeglasses', 1.0)]."""
    out = []
    for item in items:
        name, sep, weight = item.partition("=")
        if not name.strip():
            raise FacevaeError(f"--attribute {item!r} needs a name, e.g. Smiling or Smiling=1.5")
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            raise FacevaeError(f"--attribute {item!r}: the weight after '=' must be a number, "
                               "e.g. Smiling=1.5") from None
        out.append((name.strip(), w))
    if not out:
        raise FacevaeError("give at least one --attribute NAME (e.g. --attribute Smiling)")
    return out


def parse_strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise FacevaeError(f"--strengths {text!r} must be comma-separated numbers, e.g. -3,-1.5,0,1.5,3") from None
    if not values:
        raise FacevaeError("--strengths is empty: give comma-separated numbers, e.g. -3,-1.5,0,1.5,3")
    return values


# ---------------------------------------------------------------------------- the bank

@dataclass
class AttributeBank:
    names: list[str]
    directions: torch.Tensor  # (A, D) raw mean differences
    spread: torch.Tensor  # (A,) std of the training means along each unit direction
    positives: torch.Tensor  # (A,) training images with the attribute
    negatives: torch.Tensor  # (A,) training images without it

    @property
    def steps(self) -> torch.Tensor:
        """(A, D) unit directions times their spread: the vector that strength 1 adds."""
        return unit_directions(self.directions) * self.spread.unsqueeze(1)

    def index(self, name: str) -> int:
        i = attribute_index(self.names, name)
        if self.positives[i] == 0 or self.negatives[i] == 0:
            raise FacevaeError(f"attribute {self.names[i]} is {'never' if self.positives[i] == 0 else 'always'} "
                               "set in the training data, so it has no direction: pick another attribute")
        return i

    def vector(self, weights: Sequence[tuple[str, float]] | Mapping[str, float]) -> torch.Tensor:
        """(D,) sum of weight x step over the named attributes."""
        items = weights.items() if isinstance(weights, Mapping) else weights
        steps = self.steps
        return sum((w * steps[self.index(n)] for n, w in items), torch.zeros(steps.shape[1]))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"directions": self.directions.contiguous(), "spread": self.spread.contiguous(),
                "positives": self.positives.contiguous(), "negatives": self.negatives.contiguous()}


def compute_bank(means: torch.Tensor, attributes: torch.Tensor, names: Sequence[str]) -> AttributeBank:
    directions = attribute_directions(means, attributes)
    return AttributeBank(list(names), directions, projection_spread(means, directions),
                         (attributes > 0).sum(0).to(torch.int64), (attributes < 0).sum(0).to(torch.int64))


# ---------------------------------------------------------------------------- cache

def cache_paths(ckpt: str | Path | None, weights: Path, digest: str) -> tuple[list[Path], Path]:
    """(places to read from, in order; the place to write)."""
    from facevae.data import default_cache_dir
    from facevae.training.checkpoint import BUNDLED, run_dir_of

    if ckpt is None:
        shipped = weights.with_name(f"{BUNDLED}.{CACHE_NAME}")
        user = default_cache_dir() / "attributes" / f"{BUNDLED}-{digest[:16]}.safetensors"
        return [shipped, user], user
    run_dir = run_dir_of(ckpt)
    path = run_dir / (CACHE_NAME if Path(ckpt).expanduser().is_dir() else f"{weights.stem}.{CACHE_NAME}")
    return [path], path


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


def attribute_bank(ckpt: str | Path | None, model: VAE, cfg: RunConfig, data: str | Path | None = None,
                   device: str | torch.device = "cpu", progress: bool = True,
                   any_cached: bool = False) -> AttributeBank:
    """The checkpoint's attribute vectors: from the cache, or computed from `data`'s training split and cached.

    With `data` None only a cache made for these exact weights is used; with `data`,
    the cache must also have been made from that data, else the vectors are recomputed.
    With `any_cached`, vectors cached for these weights (the shipped ones of the bundled
    model) are used whatever data made them, and `data` is read only when there are none.
    """
    from facevae.training.checkpoint import resolve_weights, weights_digest

    weights = resolve_weights(ckpt)
    digest = weights_digest(weights)
    reads, write = cache_paths(ckpt, weights, digest)
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
    bank = _compute_from_data(model, cfg, data, ds, device, progress)
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
    from facevae.latent.encode import encode_images, split_images

    _, idx, images = split_images(data, "train", cfg, progress=progress)
    with phase(f"attribute vectors: encoding {len(images):,} training images", progress):
        means, _ = encode_images(model, images, device)
    attrs = torch.from_numpy(ds.attributes[idx.numpy()].astype("int64"))
    return compute_bank(means, attrs, ds.attr_names)


def attribute_vectors(ckpt: str | Path | None, model: VAE, cfg: RunConfig, data: str | Path | None = None,
                      device: str | torch.device = "cpu", progress: bool = True) -> tuple[list[str], torch.Tensor]:
    """(40 names, (40, D) float32 steps) for the web app: z + s * steps[i] edits attribute i with strength s."""
    bank = attribute_bank(ckpt, model, cfg, data=data, device=device, progress=progress)
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
    from facevae.generate import decode_batched, read_images
    from facevae.generate import split_images as first_images
    from facevae.training.checkpoint import load_model
    from facevae.training.run import resolve_device

    if bool(images) == (data is not None):
        raise FacevaeError("give either --images FILE ... or --data DIR (with --split and --n), not both or neither")
    dev = resolve_device(device)
    model, cfg = load_model(ckpt, dev)
    # without --attr-data, --data is the faces to edit: vectors cached for the weights serve, whatever made them
    bank = attribute_bank(ckpt, model, cfg, data=attr_data if attr_data is not None else data, device=dev,
                          any_cached=attr_data is None)
    vector = bank.vector(attributes)
    named = [(bank.names[bank.index(name)], float(w)) for name, w in attributes]
    size, crop = cfg.model.image_size, cfg.data.crop
    x8 = read_images(images, size, crop) if images else first_images(data, split, n, size, crop)
    x = x8.float().div(255)
    mu = torch.cat([model.encode(x[i:i + 256].to(dev)).mean.float().cpu() for i in range(0, len(x), 256)])
    z = edit_latents(mu, vector, strengths)
    out = decode_batched(model, z.reshape(-1, z.shape[-1]).to(dev))
    return FaceEdit(x, out.view(len(x), len(strengths), *out.shape[1:]), named, list(strengths))
