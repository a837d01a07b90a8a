"""`facevae.load()` and `FaceVAE`: one loaded face model, the object Python, the CLI and the web page share.

    import facevae
    vae = facevae.load()                       # the bundled CelebA 64x64 model
    faces = vae.sample(16, sampler="gmm", seed=0)
    z = vae.encode("me.jpg")
    facevae.save_grid(vae.decode(vae.edit(z, Smiling=1.5)), "smile.png")

Images are float tensors in [0, 1], (N, 3, H, W), returned on the CPU; latents are float
tensors (N, D). Weights, config and digest are read once, in `load`; fitted samplers and
attribute vectors are read on first use and kept on the object.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence, Union

import torch
from PIL import Image

from facevae.config import RunConfig
from facevae.data.photos import Photo, photo_array, resolve_align
from facevae.errors import FacevaeError, did_you_mean
from facevae.latent.attributes import AttributeBank
from facevae.latent.interpolate import interpolate as interpolate_path
from facevae.modelfiles.attributes import attribute_bank
from facevae.modelfiles.checkpoint import Checkpoint, load_model
from facevae.modelfiles.decoders import DECODERS, load_sharp_decoder
from facevae.modelfiles.device import resolve_device
from facevae.modelfiles.pretrained import carry_sharp_decoder, resolve_source, save_pretrained
from facevae.modelfiles.samplers import get_sampler
from facevae.models.forward import batched
from facevae.models.posterior import DiagonalGaussian
from facevae.models.vae import VAE
from facevae.sampling.base import Sampler

Images = Union[torch.Tensor, Photo, Sequence[Photo]]
MAX_TEMPERATURE = 3.0  # the page's cap: beyond it the prior's tails decode to noise


def load(source: str | Path | None = None, *, device: str = "auto", data: str | Path | None = None,
         decoder: str = "auto") -> "FaceVAE":
    """The model `source` names, ready to use.

    `source` is None (the bundled celeba64) or a bundled name ("celeba64", "celeba128"),
    a run folder, a `.safetensors` file, an exported Hub folder, or a Hub repo id
    ("user/repo", needs `huggingface_hub`).
    `data` is a CelebA folder used only when a sampler or the attribute vectors are
    missing for this model and must be fitted once (said on stderr, with its time).
    `decoder` is "sharp" (a decoder fine-tuned for sharp faces on the same latents),
    "likelihood" (the model's own, whose density bits/dim measure) or "auto" (sharp
    where the model has one).
    """
    if decoder not in DECODERS:
        raise FacevaeError(f"unknown decoder {decoder!r}{did_you_mean(decoder, DECODERS)}; "
                           f"choose one of: {', '.join(DECODERS)}")
    checkpoint = load_model(resolve_source(source), resolve_device(device))
    sharp = None if decoder == "likelihood" else load_sharp_decoder(checkpoint, required=decoder == "sharp")
    return FaceVAE(checkpoint, data=data, sharp_decoder=sharp[0] if sharp else None)


class FaceVAE:
    """A loaded face VAE: sample, encode, decode, reconstruct, edit and interpolate faces."""

    @classmethod
    def from_model(cls, model: VAE, config: RunConfig) -> "FaceVAE":
        """An in-memory model (no file behind it: nothing stored is found, fits are not saved)."""
        return cls(Checkpoint(model.eval(), config, Path("(in memory)"), None, "0" * 40, False, None, "(in memory)"))

    def __init__(self, checkpoint: Checkpoint, *, data: str | Path | None = None, progress: bool = True,
                 sharp_decoder: torch.nn.Module | None = None):
        self.checkpoint = checkpoint
        self.data = data
        self.progress = progress
        self.sharp_decoder = sharp_decoder
        self._samplers: dict[tuple[str, int], Sampler] = {}
        self._bank: AttributeBank | None = None

    # ------------------------------------------------------------------ what it is

    @property
    def model(self) -> VAE:
        return self.checkpoint.model

    @property
    def config(self) -> RunConfig:
        return self.checkpoint.config

    @property
    def weights_id(self) -> str:
        """The first 12 hex digits of the SHA-1 of the weights file: the name of this exact model."""
        return self.checkpoint.weights_id

    @property
    def image_size(self) -> int:
        return self.config.model.image_size

    @property
    def latent_dim(self) -> int:
        return self.config.model.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def decoder(self) -> str:
        """Which decoder `decode` draws with: "sharp" or "likelihood"."""
        return "sharp" if self.sharp_decoder is not None else "likelihood"

    @property
    def label(self) -> str:
        """How to name this model to a user: the bundled name, or the source as given."""
        return f"the bundled {self.checkpoint.weights.stem} model" if self.checkpoint.is_bundled \
            else self.checkpoint.source

    def to(self, device: str | torch.device) -> "FaceVAE":
        """Move the model (and the samplers already loaded) to `device`; returns self."""
        dev = resolve_device(str(device))
        self.model.to(dev)
        if self.sharp_decoder is not None:
            self.sharp_decoder.to(dev)
        self._samplers = {k: s.to(dev) for k, s in self._samplers.items()}
        return self

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the Hub layout (`config.json` + `model.safetensors`, and the sharp decoder where this object
        draws with one) into `folder`; `load(folder)` reads it back."""
        out = save_pretrained(self.model, self.config, folder)
        carry_sharp_decoder(self.checkpoint, out, sharp=self.sharp_decoder is not None)
        return out

    def __repr__(self) -> str:
        return (f"FaceVAE({self.label}, {self.image_size}x{self.image_size}, {self.latent_dim}-d latent, "
                f"{self.decoder} decoder, weights {self.weights_id}, {self.device})")

    # ------------------------------------------------------------------ latents <-> images

    @torch.no_grad()
    def posterior(self, images: Images, align: bool | None = None) -> DiagonalGaussian:
        """q(z|x) of each image: mean and log-variance (N, D) on the CPU; `align` as in `as_images`."""
        x = self.as_images(images, align)
        params = batched(lambda b: torch.cat(_mean_logvar(self.model.encode(b)), 1), x, self.device)
        mean, logvar = params.chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar, deterministic=not self.model.is_vae)

    @torch.no_grad()
    def encode(self, images: Images, align: bool | None = None) -> torch.Tensor:
        """The posterior means (N, D): the code a face is edited and interpolated from; `align` as in `as_images`."""
        x = self.as_images(images, align)
        return batched(lambda b: self.model.encode(b).mean.float(), x, self.device)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, D) or (D,) -> images (N, 3, H, W) in [0, 1] on the CPU, by `self.decoder`."""
        net = self.sharp_decoder if self.sharp_decoder is not None else self.model.decoder
        return batched(lambda b: torch.sigmoid(net(b)).float(), self.as_latents(z), self.device)

    def reconstruct(self, images: Images, align: bool | None = None) -> torch.Tensor:
        """decode(encode(images)): the model's reconstruction of each face from its posterior mean."""
        return self.decode(self.encode(images, align))

    # ------------------------------------------------------------------ new faces

    def sample_latents(self, n: int, *, sampler: str | Sampler = "prior", temperature: float = 1.0,
                       seed: int | None = None, components: int = 10) -> torch.Tensor:
        """(n, D) codes from the prior or a fitted sampler (a name, or a Sampler object of your own).

        The same seed gives the same codes on any device; temperature 0 gives the sampler's centre.
        """
        _check_count(n)
        _check_finite("temperature", temperature)
        if temperature < 0:
            raise FacevaeError(f"temperature must be 0 or more, got {temperature}")
        g = torch.Generator()  # on the CPU: the same seed, the same faces on CPU and GPU
        g.manual_seed(int(seed) % 2**63) if seed is not None else g.seed()
        draw = sampler if isinstance(sampler, Sampler) else self.sampler(sampler, components)
        return draw.sample(n, generator=g, temperature=float(temperature)).float().cpu()

    def sample(self, n: int, *, sampler: str = "prior", temperature: float = 1.0, seed: int | None = None,
               components: int = 10) -> torch.Tensor:
        """`n` new faces (n, 3, H, W) in [0, 1]; `sampler` is prior, gaussian, gmm, two_stage, diffusion
        or shifted (the prior moved by +0.5 in every dimension)."""
        return self.decode(self.sample_latents(n, sampler=sampler, temperature=temperature, seed=seed,
                                               components=components))

    def sampler(self, name: str = "prior", components: int = 10) -> Sampler:
        """The named latent sampler for this model: the stored fit, else fitted once on `data` (said on stderr)."""
        key = (name, components)
        if key not in self._samplers:
            self._samplers[key] = get_sampler(self.checkpoint, name=name, components=components, data=self.data,
                                              device=self.device, progress=self.progress)
        return self._samplers[key]

    # ------------------------------------------------------------------ attributes

    @property
    def attribute_bank(self) -> AttributeBank:
        """The CelebA attribute directions of this model (shipped, cached, or computed once from `data`)."""
        if self._bank is None:
            self._bank = attribute_bank(self.checkpoint, data=self.data, device=self.device,
                                        progress=self.progress, any_cached=True)
        return self._bank

    def attributes_from(self, data: str | Path) -> AttributeBank:
        """The attribute directions of exactly `data`'s training split (read from the cache when it matches).

        Returned, not kept: `edit` goes on using `attribute_bank`.
        """
        return attribute_bank(self.checkpoint, data=data, device=self.device, progress=self.progress)

    @property
    def attributes(self) -> list[str]:
        """The 40 CelebA attribute names `edit` takes."""
        return list(self.attribute_bank.names)

    def edit(self, z: torch.Tensor, weights: Mapping[str, float] | None = None, /, **attributes: float) -> torch.Tensor:
        """`z` moved along attribute directions: edit(z, Smiling=1.5) or edit(z, {"Smiling": 1.5, "Eyeglasses": 1}).

        Strength 1 is one typical spread of the training faces along the attribute; the
        weighted attributes add up to one offset. Names are case-insensitive.
        """
        named = {**(weights or {}), **attributes}
        if not named:
            raise FacevaeError("name at least one attribute to edit, e.g. edit(z, Smiling=1.5)")
        for name, w in named.items():
            _check_finite(f"strength of {name}", w)
        edited = self.as_latents(z) + self.attribute_bank.vector(list(named.items())).to(torch.float32)
        return edited[0] if z.ndim == 1 else edited  # a code in, a code out

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8, mode: str = "slerp") -> torch.Tensor:
        """Codes from `a` to `b`, ends included: (steps, D) for two codes (D,), (steps, N, D) for two (N, D) batches."""
        za, zb = self.as_latents(a), self.as_latents(b)
        if za.shape != zb.shape:
            raise FacevaeError(f"the two ends must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        path = interpolate_path(za, zb, steps, mode)
        return path[:, 0] if (a.ndim == 1 and b.ndim == 1) else path

    # ------------------------------------------------------------------ checking inputs

    def as_images(self, images: Images, align: bool | None = None) -> torch.Tensor:
        """Float (N, 3, H, W) in [0, 1] at this model's size: tensors are checked, photos read and cropped.

        Photos (paths, bytes, PIL images) are first aligned to the CelebA template when
        `align` is True, or None and the align extra is installed; tensors never are.
        """
        if isinstance(images, torch.Tensor):
            return _checked_images(images, self.image_size)
        photos = [images] if isinstance(images, (str, Path, bytes, Image.Image)) else list(images)
        if not photos:
            raise FacevaeError("no images given: pass a tensor, a PIL image, a path or a list of paths")
        if all(isinstance(p, torch.Tensor) for p in photos):
            return torch.cat([_checked_images(p, self.image_size) for p in photos])
        odd = next((p for p in photos if not isinstance(p, (str, Path, bytes, Image.Image))), None)
        if odd is not None:
            raise FacevaeError(f"cannot read a {type(odd).__name__} as a photo: pass float tensors (N, 3, H, W) "
                               "in [0, 1], PIL images or paths")
        crop, align = self.config.data.crop, resolve_align(align)
        return torch.stack([torch.from_numpy(photo_array(p, self.image_size, crop, align))
                            for p in photos]).float() / 255

    def as_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Float32 (N, D) codes, checked: the right width, finite."""
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise FacevaeError(f"latents must be a float tensor of shape (N, {self.latent_dim}), got "
                               f"{type(z).__name__ if not isinstance(z, torch.Tensor) else z.dtype}")
        z = z.detach().float().cpu()
        z = z.unsqueeze(0) if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise FacevaeError(f"latents must have shape (N, {self.latent_dim}) for this model, got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise FacevaeError("latents hold NaN or infinite values: pass finite codes (e.g. from encode or sample)")
        return z


def _mean_logvar(post: DiagonalGaussian) -> tuple[torch.Tensor, torch.Tensor]:
    return post.mean.float(), post.logvar.float()


def _checked_images(x: torch.Tensor, size: int) -> torch.Tensor:
    if not x.is_floating_point():
        raise FacevaeError(f"images must be float tensors in [0, 1], got {x.dtype}: "
                           "for uint8 pixels pass x.float() / 255")
    x = x.detach().float().cpu()
    x = x.unsqueeze(0) if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2:] != (size, size):
        raise FacevaeError(f"images must have shape (N, 3, {size}, {size}) for this model, got {tuple(x.shape)}: "
                           "pass photos (paths or PIL images) to have them cropped and resized")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise FacevaeError("images must hold finite values in [0, 1]: for 0..255 pixels divide by 255")
    return x


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise FacevaeError(f"the number of faces must be a whole number of at least 1, got {n!r}")


def _check_finite(what: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise FacevaeError(f"{what} must be a finite number, got {value!r}")
