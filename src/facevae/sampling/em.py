"""Gaussian-mixture EM in torch, on whatever device the latents live on.

Cost per iteration is dominated by the E-step's k batched (n x d) @ (d x d)
products; the M-step only touches (point, component) pairs whose responsibility
exceeds RESP_FLOOR, so well-separated data costs about one pass instead of k.
Heavy products run in `dtype` (float32 by default) on data centred per
component; parameters, log-likelihoods and sufficient statistics stay float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from facevae.sampling.linalg import (
    cholesky_with_jitter,
    data_scale,
    ieee_float32_matmul,
    inverse_tril,
    log_normaliser,
    weighted_log_prob,
)

# A point whose responsibility is below this carries under 1e-9 of its weight to
# the component: dropping it is invisible, yet skips most of the M-step.
RESP_FLOOR = 1e-9
KMEANS_ITERS = 20
KMEANS_ROWS = 20_000
_CPU_CHUNK_ELEMENTS = 1 << 22  # (k, rows, d) float32 blocks of 16 MB stay cache- and RAM-friendly
_CUDA_CHUNK_ELEMENTS = 1 << 25  # 128 MB float32 temporaries
_M_STEP_ROWS = 1 << 16


@dataclass
class Mixture:
    """Mixture parameters: weights (k,), means (k, d), lower Cholesky factors (k, d, d)."""

    weights: torch.Tensor
    means: torch.Tensor
    scale_tril: torch.Tensor


@dataclass
class FitResult:
    mixture: Mixture
    n_iter: int  # EM updates applied after the k-means initialisation
    converged: bool
    mean_log_likelihood: float  # of the returned mixture, on the fitted latents


def fit_mixture(latents: torch.Tensor, k: int, *, max_iter: int, tol: float, reg_covar: float,
                diagonal: bool, seed: int, dtype: torch.dtype) -> FitResult:
    """EM from a k-means++ start; stops when the mean log-likelihood moves less than `tol`."""
    centre = latents.mean(0, dtype=torch.float64)
    work = torch.promote_types(latents.dtype, dtype)
    x = (latents.to(work) - centre.to(work)).to(dtype)
    reg = reg_covar * data_scale(x)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    with ieee_float32_matmul():
        result = _run_em(x, kmeans_labels(x, k, gen), k, max_iter, tol, reg, diagonal)
    result.mixture.means = result.mixture.means + centre
    return result


def _run_em(x: torch.Tensor, labels: torch.Tensor, k: int, max_iter: int, tol: float, reg: float,
            diagonal: bool) -> FitResult:
    mix = m_step(x, torch.nn.functional.one_hot(labels, k).mT.to(x.dtype).contiguous(), None, reg, diagonal)
    prev, converged, it = -float("inf"), False, 0
    for it in range(max_iter + 1):
        resp, ll = e_step(x, mix)
        converged = abs(ll - prev) < tol
        if converged or it == max_iter:
            break
        mix, prev = m_step(x, resp, mix.means, reg, diagonal), ll
    return FitResult(mix, it, converged, ll)


def chunk_rows(k: int, d: int, device: torch.device) -> int:
    budget = _CUDA_CHUNK_ELEMENTS if device.type == "cuda" else _CPU_CHUNK_ELEMENTS
    return max(1, budget // (k * d))


def prepare(mix: Mixture, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(means, whitening L^{-T}, log w + log normaliser) ready for `weighted_log_prob`."""
    whiten = inverse_tril(mix.scale_tril).mT
    offsets = mix.weights.log() + log_normaliser(mix.scale_tril)
    return mix.means.to(dtype), whiten.to(dtype), offsets


def joint_log_prob(x: torch.Tensor, mix: Mixture, dtype: torch.dtype) -> torch.Tensor:
    """(n, k) float64 log(w_j N(x; mu_j, S_j)), computed in row chunks."""
    means, whiten, offsets = prepare(mix, dtype)
    rows = chunk_rows(*mix.means.shape, x.device)
    parts = [weighted_log_prob(c.to(dtype), means, whiten, offsets) for c in x.split(rows)]
    return torch.cat(parts) if parts else x.new_zeros((0, mix.weights.numel()), dtype=torch.float64)


def e_step(x: torch.Tensor, mix: Mixture) -> tuple[torch.Tensor, float]:
    """Responsibilities (k, n) in x's dtype, and the mean log-likelihood under `mix`."""
    joint = joint_log_prob(x, mix, x.dtype)
    log_norm = torch.logsumexp(joint, dim=1, keepdim=True)
    resp = (joint - log_norm).exp_().mT.to(x.dtype).contiguous()
    return resp, log_norm.mean().item()


def m_step(x: torch.Tensor, resp: torch.Tensor, old_means: torch.Tensor | None, reg: float,
           diagonal: bool) -> Mixture:
    """Weighted means and covariances from (k, n) responsibilities, plus reg * I."""
    stats = [_component_stats(x, r, None if old_means is None else old_means[j], diagonal)
             for j, r in enumerate(resp)]
    counts = torch.stack([s[0] for s in stats])
    means = torch.stack([s[1] for s in stats])
    covs = torch.stack([s[2] for s in stats])
    return Mixture(counts / counts.sum(), means, cholesky_with_jitter(covs, reg))


def _component_stats(x: torch.Tensor, r: torch.Tensor, shift: torch.Tensor | None,
                     diagonal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight sum, mean, covariance) of one component, in float64.

    Moments are taken about `shift` (the previous mean, close to the new one) so
    the float32 products see small centred values and no cancellation.
    """
    d = x.shape[1]
    f64 = dict(dtype=torch.float64, device=x.device)
    idx = (r > RESP_FLOOR).nonzero().squeeze(1)
    if shift is None:  # first step from hard k-means labels: every member has weight 1
        shift = x[idx].mean(0, dtype=torch.float64) if idx.numel() else torch.zeros(d, **f64)
    total, first, second = torch.zeros((), **f64), torch.zeros(d, **f64), torch.zeros(d, d, **f64)
    for block in idx.split(_M_STEP_ROWS):
        w, z = r[block], x[block] - shift.to(x.dtype)
        total += w.sum(dtype=torch.float64)
        first += (w @ z).to(torch.float64)
        moment = torch.diag(w @ z.square()) if diagonal else (z.mT * w) @ z
        second += moment.to(torch.float64)
    # A component that lost every point keeps its place with zero weight instead of dividing by zero.
    safe = total.clamp_min(torch.finfo(torch.float64).tiny)
    delta = first / safe
    cov = second / safe - torch.outer(delta, delta)
    return total, shift + delta, torch.diag(cov.diagonal()) if diagonal else cov


def kmeans_labels(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Hard labels of every row from k-means (k-means++ seeding) run on a random subset.

    EM refines the start anyway, so a subset of KMEANS_ROWS keeps initialisation
    a small fraction of one EM iteration.
    """
    subset = x[torch.randperm(x.shape[0], generator=gen, device=x.device)[:KMEANS_ROWS]]
    centres = _kmeans_pp(subset, k, gen)
    for _ in range(KMEANS_ITERS):
        labels = _nearest(subset, centres)
        counts = torch.bincount(labels, minlength=k).unsqueeze(1)
        sums = torch.zeros_like(centres).index_add_(0, labels, subset)
        moved = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
        if torch.equal(moved, centres):
            break
        centres = moved
    return _nearest(x, centres)


def _nearest(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    # |x|^2 is the same for every centre, so it drops out of the argmin.
    return (centres.square().sum(1) - 2 * x @ centres.mT).argmin(1)


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    sq = x.square().sum(1)
    centres = x[torch.randint(x.shape[0], (1,), generator=gen, device=x.device)]
    dist = (sq - 2 * x @ centres[0] + centres[0].square().sum()).clamp_min(0)
    for _ in range(1, k):
        # The tiny floor keeps multinomial valid when fewer than k distinct points exist.
        pick = x[torch.multinomial(dist.to(torch.float64) + 1e-300, 1, generator=gen)]
        centres = torch.cat([centres, pick])
        dist = torch.minimum(dist, (sq - 2 * x @ pick[0] + pick[0].square().sum()).clamp_min(0))
    return centres
