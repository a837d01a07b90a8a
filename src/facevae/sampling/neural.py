"""What the samplers that train a small network on standardised latents (two_stage, diffusion) share."""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, TypeVar

import torch
from torch import nn

from facevae.errors import FacevaeError
from facevae.sampling.linalg import data_scale

M = TypeVar("M", bound=nn.Module)

# Relative to the mean std: collapsed latent dims are divided by this instead of ~0.
_MIN_STD = 1e-6


def standardisation(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (mean, std) per latent dim; a collapsed dim's std is floored so dividing by it stays finite."""
    x = latents.detach().to(torch.float64)
    return x.mean(0), x.std(0).clamp_min(_MIN_STD * math.sqrt(data_scale(x)))


def stored_standardisation(state: Mapping[str, torch.Tensor], name: str, scalar: str,
                           latent_dim: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mean, std, D) of a saved fit, checked against each other, its 0-d `scalar` entry and `latent_dim`."""
    mean, std = state["mean"].to(torch.float64), state["std"].to(torch.float64)
    d = mean.shape[0] if mean.ndim == 1 else 0
    if d == 0 or std.shape != (d,) or state[scalar].ndim != 0 or latent_dim not in (None, d):
        raise FacevaeError(f"{name} sampler state has mean {tuple(mean.shape)} and std {tuple(std.shape)}, "
                           f"not ({latent_dim},); re-fit and save it again")
    return mean, std, d


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Networks built inside start the same for a seed on any device; the caller's global RNG stream is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def training_allowed() -> Iterator[None]:
    """Callers often hold no_grad or inference mode (samplers are fitted from evaluation code); fits train anyway."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def net_from_state(state: Mapping[str, torch.Tensor], prefix: str, build: Callable[[], M], mismatch: str) -> M:
    """`build()`'s module holding the float32 weights saved under `prefix`; FacevaeError(mismatch) if they don't fit."""
    weights = {k[len(prefix):]: v.to(torch.float32) for k, v in state.items() if k.startswith(prefix)}
    with torch.device("meta"):  # no throw-away random init, and the global RNG is not advanced
        net = build()
    try:
        net.load_state_dict(weights, assign=True)
    except RuntimeError:
        raise FacevaeError(mismatch) from None
    return net


def check_fit_options(*, hidden: int, depth: int, steps: int, batch_size: int, seed: int, lr: float) -> None:
    for name, value, least in (("hidden", hidden, 1), ("depth", depth, 1), ("steps", steps, 1),
                               ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise FacevaeError(f"{name} must be an integer >= {least}, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise FacevaeError(f"lr must be a positive number, got {lr!r}")
