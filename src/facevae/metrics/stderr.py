"""Standard errors of per-image means when images of one person are correlated.

CelebA's splits hold about 30 images per identity; two photos of one face score
alike, so the per-image standard error s / sqrt(n) understates the uncertainty of
a split mean (2-3x on CelebA). The cluster-robust (CR1) standard error of a mean
treats each identity's summed residual as one observation:

    se^2 = G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2 / n^2

for n values in G clusters. With every value its own cluster it is s / sqrt(n).
"""
from __future__ import annotations

import math

import numpy as np


def clustered_stderr(values, clusters) -> float:
    """CR1 standard error of mean(values) with values grouped by `clusters` (any hashable labels)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    labels = np.asarray(clusters).ravel()
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} values but {len(labels)} cluster labels")
    _, group = np.unique(labels, return_inverse=True)
    g = int(group.max()) + 1 if len(group) else 0
    if g < 2:
        return math.nan
    sums = np.bincount(group, weights=x - x.mean(), minlength=g)
    return math.sqrt(g / (g - 1) * float(sums @ sums)) / len(x)


def identity_clusters(identity: np.ndarray | None, indices: np.ndarray) -> np.ndarray | None:
    """Identity labels of the images at `indices`; images of unknown identity (-1) each a cluster of their own."""
    if identity is None:
        return None
    ids = np.asarray(identity)[indices].astype(np.int64)
    unknown = ids < 0
    ids[unknown] = -1 - np.arange(int(unknown.sum()))  # distinct negative labels, apart from every real id
    return ids
