"""torch.hub entry points: `torch.hub.load(CLONE, "celeba64", source="local")` (or "celeba128") gives a `facevae.FaceVAE`.

Works offline from a clone: the bundled weights are in src/facevae/pretrained.
"""
import os
import sys

dependencies = ["torch", "safetensors", "yaml", "PIL", "typer"]

# a clone need not be installed: its own src/ comes first, so the clone's code loads the clone's weights
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

import facevae  # noqa: E402


def celeba64(device: str = "auto", data: str | None = None, decoder: str = "auto") -> "facevae.FaceVAE":
    """The bundled CelebA 64x64 VAE (64-d latent) with its shipped samplers, attribute vectors and decoders."""
    return facevae.load("celeba64", device=device, data=data, decoder=decoder)


def celeba128(device: str = "auto", data: str | None = None, decoder: str = "auto") -> "facevae.FaceVAE":
    """The bundled CelebA 128x128 VAE (128-d latent) with its shipped samplers and attribute vectors."""
    return facevae.load("celeba128", device=device, data=data, decoder=decoder)


def load(source: str | None = None, device: str = "auto", data: str | None = None,
         decoder: str = "auto") -> "facevae.FaceVAE":
    """Any model `facevae.load` takes: a bundled name, a run folder, a weights file, a Hub folder or repo id."""
    return facevae.load(source, device=device, data=data, decoder=decoder)
