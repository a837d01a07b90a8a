"""CelebA attribute vectors in latent space: directions, their spread, and edits along them.

The direction of attribute a is mean(mu | a = +1) - mean(mu | a = -1) over the
training split's posterior means. Edits use a *step* per attribute: the unit
direction times the standard deviation of the training means projected on it,
so strength 1 moves a face by one typical population spread along that
attribute, whatever the attribute (Male and Eyeglasses have very different raw
difference lengths). Strengths of +-3 reach the edge of the data.

Pure functions of tensors; computing and caching the vectors for a checkpoint is
`facevae.tasks.edit`'s job.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from facevae.errors import FacevaeError, did_you_mean


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
