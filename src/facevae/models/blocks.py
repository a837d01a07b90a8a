"""Building blocks, chosen by name from registries (no if/elif on names)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from facevae.errors import FacevaeError


def _group_norm(channels: int) -> nn.Module:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "group": _group_norm,
    "none": lambda channels: nn.Identity(),
}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
}


def lookup(registry: dict, name: str, what: str):
    if name not in registry:
        raise FacevaeError(f"unknown {what} {name!r}; choose one of: {', '.join(registry)}")
    return registry[name]


class Stage(nn.Sequential):
    """conv -> norm -> activation -> dropout, the unit of the seed projects' nets."""

    def __init__(self, conv: nn.Module, channels: int, norm: str, activation: str, dropout: float):
        layers = [conv, lookup(NORMS, norm, "norm")(channels), lookup(ACTIVATIONS, activation, "activation")()]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Pre-activation residual block at constant resolution and width."""

    def __init__(self, channels: int, norm: str, activation: str, dropout: float):
        super().__init__()
        act = lookup(ACTIVATIONS, activation, "activation")
        make_norm = lookup(NORMS, norm, "norm")
        self.body = nn.Sequential(
            make_norm(channels), act(), nn.Conv2d(channels, channels, 3, padding=1),
            make_norm(channels), act(), nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


def down(c_in: int, c_out: int) -> nn.Module:
    return nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)


def up(c_in: int, c_out: int) -> nn.Module:
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
