"""Batched Gaussian linear algebra shared by the Gaussian and mixture samplers."""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch

from facevae.errors import FacevaeError
from facevae.precision import ieee_float32

_JITTER_TRIES = 8  # each retry adds 10x more jitter: 1e-6 relative reaches 10 after 8


def data_scale(latents: torch.Tensor) -> float:
    """Mean per-dimension variance: the yardstick for relative jitter and reg_covar."""
    var = latents.to(torch.float64).var(dim=0, correction=0).mean().item()
    # Constant latents have zero variance; keep the jitter positive anyway.
    return max(var, 1e-12)


def cholesky_with_jitter(cov: torch.Tensor, jitter: float) -> torch.Tensor:
    """Lower Cholesky factor of (a batch of) covariances after adding `jitter` * I.

    The jitter grows tenfold while factorisation fails, since a nearly singular
    covariance (collapsed latent dims, duplicated rows) is common in VAE latents.
    """
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    cov = 0.5 * (cov + cov.mT)  # float round-off makes S^T != S, which cholesky rejects
    for attempt in range(_JITTER_TRIES):
        chol, info = torch.linalg.cholesky_ex(cov + (jitter * 10**attempt) * eye)
        if not bool((info != 0).any()):
            return chol
    raise FacevaeError("latent covariance is not positive definite even with jitter; "
                       "check the latents for NaNs, duplicates or a collapsed encoder")


def inverse_tril(scale_tril: torch.Tensor) -> torch.Tensor:
    """L^{-1} for lower-triangular L (batched)."""
    eye = torch.eye(scale_tril.shape[-1], dtype=scale_tril.dtype, device=scale_tril.device)
    return torch.linalg.solve_triangular(scale_tril, eye.expand_as(scale_tril), upper=False)


def log_normaliser(scale_tril: torch.Tensor) -> torch.Tensor:
    """log of N(x; mu, LL^T) at x = mu, per batch element."""
    d = scale_tril.shape[-1]
    return -0.5 * d * math.log(2 * math.pi) - scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)


def weighted_log_prob(x: torch.Tensor, means: torch.Tensor, whiten: torch.Tensor,
                      offsets: torch.Tensor) -> torch.Tensor:
    """(n, k) float64 values offsets_j - 0.5 * ||(x - mu_j) W_j||^2.

    x, means, whiten are in the compute dtype (whiten_j = L_j^{-T}); the centring
    happens before the matrix product so float32 keeps its precision near each mean.
    """
    centred = x.unsqueeze(0) - means.unsqueeze(1)  # (k, n, d)
    maha = torch.linalg.vector_norm(torch.bmm(centred, whiten), dim=-1).square()  # fused: no (k, n, d) temporary
    return (offsets.unsqueeze(1) - 0.5 * maha.to(torch.float64)).mT


@contextmanager
def ieee_float32_matmul() -> Iterator[None]:
    """Turn TF32 off for CUDA float32 matmuls inside the block, then restore the caller's choice.

    Training scripts often enable TF32; its 10-bit mantissa would put ~0.1 nat
    errors into 128-dim Mahalanobis distances.
    """
    with ieee_float32(torch.backends.cuda.matmul, torch.backends.cuda.matmul):
        yield
