"""Nearest training image in a feature space: the memorisation check beside FID.

Pure: features in, indices and distances out. A model that copies its training faces
puts its samples much closer to their nearest training image than unseen (valid) faces
are to theirs; comparable distributions mean no copying at this resolution of features.
"""
from __future__ import annotations

import numpy as np


def nearest(query: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(index into `reference`, Euclidean distance) of each query row's nearest reference row.

    Exact, in float64, in chunks of `chunk` query rows so 10k x 24k distances never sit in memory
    at once. Ties go to the lower index.
    """
    q = np.asarray(query, np.float64)
    r = np.asarray(reference, np.float64)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1] or not len(r):
        raise ValueError(f"query {q.shape} and reference {r.shape} must be N x D and M x D with M > 0")
    r_sq = np.einsum("ij,ij->i", r, r)
    idx, dist = np.empty(len(q), np.int64), np.empty(len(q))
    for start in range(0, len(q), chunk):
        part = q[start:start + chunk]
        # |q|^2 is the same for every candidate, so |r|^2 - 2 q.r ranks them (one matrix product);
        # the winner's distance is then taken directly, which the expanded square would round
        best = (r_sq[None, :] - 2.0 * part @ r.T).argmin(1)
        idx[start:start + chunk] = best
        dist[start:start + chunk] = np.linalg.norm(part - r[best], axis=1)
    return idx, dist


def distance_summary(dist: np.ndarray) -> dict[str, float]:
    """Mean and percentiles of nearest-neighbour distances, rounded for a results table."""
    d = np.asarray(dist, np.float64)
    pct = np.percentile(d, [1, 5, 25, 50, 75])
    return {"n": int(len(d)), "mean": round(float(d.mean()), 3), "min": round(float(d.min()), 3),
            **{f"p{p}": round(float(v), 3) for p, v in zip((1, 5, 25, 50, 75), pct)}}
