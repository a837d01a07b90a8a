"""Paths between two latent codes: linear and spherical, in a registry.

`slerp` moves along the great circle between the two directions and interpolates
the length linearly, so for codes of equal length (the typical case for N(0, I)
draws in many dimensions) every point keeps that length, while the linear
midpoint of two independent prior draws is about 1/sqrt(2) too short and decodes
to a blurry "average" face.
"""
from __future__ import annotations

from typing import Callable

import torch

from facevae.errors import FacevaeError

# below this angle the great circle is numerically a straight line
_SMALL_ANGLE = 1e-4


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(T, ..., D): (1 - t) z0 + t z1 for each t."""
    t = t.to(z0).view(-1, *([1] * z0.ndim))
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(T, ..., D): spherical interpolation of the directions, linear in the length.

    Rows whose directions are (nearly) parallel fall back to lerp. Exactly opposite
    directions have no unique great circle; they also fall back to lerp.
    """
    t = t.to(z0).view(-1, *([1] * z0.ndim))
    n0 = z0.norm(dim=-1, keepdim=True)
    n1 = z1.norm(dim=-1, keepdim=True)
    u0 = z0 / n0.clamp_min(1e-12)
    u1 = z1 / n1.clamp_min(1e-12)
    cos = (u0 * u1).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    ok = (sin > _SMALL_ANGLE) & (n0 > 0) & (n1 > 0)
    safe = torch.where(ok, sin, torch.ones_like(sin))
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / safe
    spherical = direction * ((1 - t) * n0 + t * n1)
    # exact endpoints regardless of rounding in sin/arccos
    spherical = torch.where(t == 0, z0.expand_as(spherical), spherical)
    spherical = torch.where(t == 1, z1.expand_as(spherical), spherical)
    return torch.where(ok, spherical, lerp(z0, z1, t.flatten()))


INTERPOLATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "linear": lerp,
    "slerp": slerp,
}


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, mode: str = "slerp") -> torch.Tensor:
    """(steps, ..., D) codes from z0 to z1 inclusive, evenly spaced in t."""
    if mode not in INTERPOLATIONS:
        raise FacevaeError(f"unknown interpolation mode {mode!r}; choose one of: {', '.join(INTERPOLATIONS)}")
    if steps < 2:
        raise FacevaeError(f"an interpolation needs at least 2 steps (the two ends), got {steps}")
    if z0.shape != z1.shape:
        raise FacevaeError(f"latent codes have different shapes {tuple(z0.shape)} and {tuple(z1.shape)}")
    if not (torch.isfinite(z0).all() and torch.isfinite(z1).all()):
        raise FacevaeError("the ends of an interpolation must be finite codes (they hold NaN or inf)")
    t = torch.linspace(0, 1, steps, dtype=torch.float64)
    return INTERPOLATIONS[mode](z0.double(), z1.double(), t).to(z0.dtype)
