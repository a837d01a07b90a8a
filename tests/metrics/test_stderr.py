"""Standard errors clustered by identity: exact answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facevae.metrics.likelihood import LikelihoodResult
from facevae.metrics.stderr import clustered_stderr, identity_clusters


def test_clustered_stderr_exact_answer():
    # mean 2.5; residuals -1.5, -0.5 | 0.5, 1.5; cluster sums -2, 2: se^2 = 2/1 * 8 / 16 = 1
    assert clustered_stderr([1, 2, 3, 4], [7, 7, 9, 9]) == pytest.approx(1.0, abs=1e-15)
    # the same values paired across the mean: both clusters' residuals sum to 0
    assert clustered_stderr([1, 2, 3, 4], ["a", "b", "b", "a"]) == pytest.approx(0.0, abs=1e-15)


def test_singleton_clusters_give_the_per_image_stderr():
    x = np.random.default_rng(0).standard_normal(37)
    assert clustered_stderr(x, np.arange(37)) == pytest.approx(x.std(ddof=1) / math.sqrt(37), rel=1e-12)


def test_one_cluster_has_no_stderr_and_lengths_must_match():
    assert math.isnan(clustered_stderr([1.0, 2.0], [3, 3]))
    with pytest.raises(ValueError, match="3 values but 2"):
        clustered_stderr([1, 2, 3], [1, 2])


def test_identity_clusters_keep_unknown_images_apart():
    identity = np.array([5, 5, -1, 8, -1], dtype=np.int32)
    ids = identity_clusters(identity, np.array([0, 1, 2, 4]))
    assert ids[0] == ids[1] == 5 and ids[2] != ids[3] and len(set(ids.tolist())) == 3 and 5 not in ids[2:]
    assert identity_clusters(None, np.arange(3)) is None


def test_likelihood_summary_reports_clustered_errors_and_the_bits_per_dim_caveat():
    nll = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    res = LikelihoodResult(nll, nll, nll, nll, k=4, dims=12, decoder="d", recon="bce")
    s = res.summary(np.array([7, 7, 9, 9]))
    assert s["identities"] == 2 and s["iwae_nll"]["stderr_nats_by_identity"] == pytest.approx(1.0)
    assert s["iwae_nll"]["stderr_nats"] == pytest.approx(float(nll.std()) / 2)
    assert "not comparable" in s["bits_per_dim_caveat"] and "BCE" in s["bits_per_dim_caveat"]
    plain = LikelihoodResult(nll, nll, nll, nll, k=4, dims=12, decoder="d", recon="mse").summary()
    assert "identities" not in plain and "stderr_nats_by_identity" not in plain["neg_elbo"]
    assert "same decoder" in plain["bits_per_dim_caveat"] and "Gaussian" in plain["bits_per_dim_caveat"]
