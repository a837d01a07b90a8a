"""Convolutional VAE and plain autoencoder, one class configured by `ModelConfig`.

The model maps images to a posterior and latents to decoder logits; losses, data
and files live elsewhere.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from facevae.config import ModelConfig
from facevae.models.blocks import ResBlock, Stage, down, up
from facevae.models.posterior import DiagonalGaussian


def _stage(conv: nn.Module, channels: int, cfg: ModelConfig) -> nn.Sequential:
    layers = [Stage(conv, channels, cfg.norm, cfg.activation, cfg.dropout)]
    if cfg.block == "resnet":
        layers += [ResBlock(channels, cfg.norm, cfg.activation, cfg.dropout) for _ in range(cfg.res_blocks)]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Stride-2 conv stages, then a linear head giving mean (and log-variance)."""

    def __init__(self, cfg: ModelConfig, in_channels: int = 3):
        super().__init__()
        chans = (in_channels, *cfg.widths)
        self.features = nn.Sequential(*(_stage(down(a, b), b, cfg) for a, b in zip(chans, chans[1:])))
        side = cfg.image_size // 2 ** len(cfg.widths)
        n_out = cfg.latent_dim * (1 if cfg.kind == "ae" else 2)
        self.head = nn.Linear(cfg.widths[-1] * side * side, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class Decoder(nn.Module):
    """Linear to the smallest feature map, mirrored transposed-conv stages, conv to RGB logits."""

    def __init__(self, cfg: ModelConfig, out_channels: int = 3):
        super().__init__()
        self.side = cfg.image_size // 2 ** len(cfg.widths)
        self.top = cfg.widths[-1]
        self.fc = nn.Linear(cfg.latent_dim, self.top * self.side * self.side)
        chans = (*reversed(cfg.widths), cfg.widths[0])
        self.features = nn.Sequential(*(_stage(up(a, b), b, cfg) for a, b in zip(chans, chans[1:])))
        self.to_rgb = nn.Conv2d(cfg.widths[0], out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.top, self.side, self.side)
        return self.to_rgb(self.features(h))


@dataclass
class VAEOutput:
    posterior: DiagonalGaussian
    z: torch.Tensor
    logits: torch.Tensor  # decoder output before the sigmoid
    log_sigma: torch.Tensor | None = None  # learned Gaussian decoder scale, when configured

    @property
    def recon(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class VAE(nn.Module):
    """x in [0, 1] -> q(z|x) -> z -> p(x|z) logits. kind="ae" gives a deterministic autoencoder."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # a scalar decoder scale; lives here because it is a parameter of p(x|z)
        self.log_sigma = nn.Parameter(torch.zeros(1)) if cfg.learned_sigma else None

    @property
    def is_vae(self) -> bool:
        return self.cfg.kind == "vae"

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        # centred input trains faster than [0, 1]; float32 before the posterior: under autocast the
        # head gives bf16/fp16, where exp(logvar) overflows (fp16, logvar > 11.09) and the KL of an
        # inactive unit is rounding noise, negative about half the time
        h = self.encoder(x * 2.0 - 1.0).float()
        if not self.is_vae:
            return DiagonalGaussian(h, deterministic=True)
        mean, logvar = h.chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents to images in [0, 1] (the decoder mean)."""
        return torch.sigmoid(self.decoder(z))

    def with_decoder(self, decoder: nn.Module) -> "VAE":
        """This VAE (the same encoder object) drawing with another decoder, e.g. a sharp one; self is unchanged."""
        other = copy.copy(self)
        other._modules = dict(self._modules)  # a shallow copy shares the module table: give it its own
        other.decoder = decoder
        return other

    def forward(self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None) -> VAEOutput:
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return VAEOutput(posterior, z, self.decoder(z), self.log_sigma)


# the registries; config.CHOICES repeats their names as literals (tests/test_config.py keeps them equal)
MODEL_KINDS = ("vae", "ae")
BLOCKS = ("conv", "resnet")


def build_model(cfg: ModelConfig) -> VAE:
    return VAE(cfg)
