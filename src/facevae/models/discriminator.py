"""A patch discriminator (pix2pix, VQGAN): each output logit judges one receptive field of the image.

Trained from scratch beside the decoder; it never sees a pretrained network's features.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _plain(conv: nn.Module) -> nn.Module:
    return conv


# how each conv is wrapped: spectral norm bounds the discriminator's Lipschitz constant (Miyato et al. 2018)
DISC_NORMS: dict[str, Callable[[nn.Module], nn.Module]] = {"spectral": spectral_norm, "none": _plain}


class PatchDiscriminator(nn.Module):
    """Stride-2 4x4 convs of `widths` channels with LeakyReLU, then a 4x4 conv to one logit per patch."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256), norm: str = "spectral", in_channels: int = 3):
        super().__init__()
        wrap = DISC_NORMS[norm]
        layers: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *widths), widths):
            layers += [wrap(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        layers.append(wrap(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> (N, 1, h, w) logits, real > 0 > fake after training."""
        return self.net(x * 2.0 - 1.0)

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(the activation after each stride-2 layer, the logits): what feature matching compares."""
        feats, h = [], x * 2.0 - 1.0
        for layer in self.net:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(h)
        return feats, h
