"""Latent-space math on synthetic data with known answers: activity, KL, PCA, attribute vectors, paths."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from facevae.errors import FacevaeError
from facevae.latent.attributes import (AttributeBank, attribute_directions, attribute_index, compute_bank,
                                       edit_latents, projection_spread,
                                       unit_directions)
from facevae.latent.interpolate import INTERPOLATIONS, interpolate, lerp, slerp
from facevae.latent.stats import active_units, kl_per_dim, latent_activity, pca_2d, summarize
from facevae.models.posterior import DiagonalGaussian


# ----------------------------------------------------------------------------- activity and KL

def test_active_units_counts_dimensions_whose_means_vary():
    g = torch.Generator().manual_seed(0)
    n = 4000
    stds = torch.tensor([1.0, 0.5, 0.2, 0.05, 0.0, 0.001])  # variances 1, .25, .04, .0025, 0, 1e-6
    means = torch.randn(n, len(stds), generator=g) * stds + 3.0  # an offset changes nothing
    assert active_units(means) == 3
    assert active_units(means, threshold=0.1) == 2
    assert active_units(means, threshold=0.001) == 4
    torch.testing.assert_close(latent_activity(means), stds.double() ** 2, rtol=0.1, atol=1e-4)


def test_kl_per_dim_closed_form_and_matches_posterior():
    means = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 2.0]])
    logvars = torch.tensor([[0.0, 0.0, math.log(2.0)], [0.0, 0.0, 0.0]])
    # dim 0: N(0,1) -> 0; dim 1: mu^2/2 = 0.5; dim 2: mean of 0.5 (2 - 1 - log 2) and 0.5 * 4
    expected = torch.tensor([0.0, 0.5, 0.5 * (0.5 * (1 - math.log(2.0)) + 2.0)], dtype=torch.float64)
    kl = kl_per_dim(means, logvars)
    torch.testing.assert_close(kl, expected)
    post = DiagonalGaussian(means, logvars)
    torch.testing.assert_close(kl.float(), post.kl_per_dim().mean(0))
    assert float(kl.sum()) == pytest.approx(float(post.kl().mean()), rel=1e-6)


def test_kl_per_dim_rejects_autoencoder_posteriors_and_bad_shapes():
    means = torch.zeros(4, 3)
    with pytest.raises(FacevaeError, match="no KL"):
        kl_per_dim(means, torch.full_like(means, -float("inf")))
    with pytest.raises(FacevaeError, match="do not match"):
        kl_per_dim(means, torch.zeros(4, 2))


def test_summary_of_an_autoencoder_has_no_kl():
    means = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    summary = summarize(means, None)
    assert summary.kl is None and summary.to_json()["total_kl"] is None
    assert summary.to_json()["active_units"] == 4


# ----------------------------------------------------------------------------- PCA

def test_pca_2d_recovers_a_known_plane():
    g = torch.Generator().manual_seed(2)
    n, d = 2000, 6
    a, b = torch.randn(n, generator=g) * 3.0, torch.randn(n, generator=g)
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    x = a[:, None] * basis[:, 0] + b[:, None] * basis[:, 1] + 0.01 * torch.randn(n, d, generator=g) + 5.0
    coords, ratio = pca_2d(x)
    assert coords.shape == (n, 2)
    assert float(ratio[0]) == pytest.approx(0.9, abs=0.02) and float(ratio[1]) == pytest.approx(0.1, abs=0.02)
    corr = torch.corrcoef(torch.stack([coords[:, 0], coords[:, 1], a, b]))
    assert abs(float(corr[0, 2])) > 0.999 and abs(float(corr[1, 3])) > 0.999
    assert float(coords.mean(0).abs().max()) < 1e-3  # centred


def test_pca_2d_is_deterministic_and_sign_stable():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(3))
    c1, _ = pca_2d(x)
    c2, _ = pca_2d(x.clone())
    torch.testing.assert_close(c1, c2)


# ----------------------------------------------------------------------------- attribute vectors

def _factorial(n_attr: int, repeats: int) -> torch.Tensor:
    """Every +-1 combination equally often: each attribute is balanced within the other's groups."""
    rows = torch.tensor(list(itertools.product([-1, 1], repeat=n_attr)))
    return rows.repeat(repeats, 1)


def test_attribute_directions_known_answer():
    attrs = _factorial(3, 5)  # 40 rows
    w = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, -3.0, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25]])
    means = attrs.float() @ w + torch.tensor([10.0, -4.0, 0.0, 1.0])  # a shared offset cancels
    # mean(+1 group) - mean(-1 group) of a * w_a is 2 w_a; the other attributes cancel
    torch.testing.assert_close(attribute_directions(means, attrs), 2 * w)


def test_attribute_directions_unbalanced_groups_use_group_means():
    means = torch.tensor([[1.0], [3.0], [10.0], [20.0], [30.0]])
    attrs = torch.tensor([[1], [1], [-1], [-1], [-1]])
    torch.testing.assert_close(attribute_directions(means, attrs), torch.tensor([[2.0 - 20.0]]))


def test_attribute_that_never_varies_gets_a_zero_row():
    attrs = torch.cat([_factorial(1, 6), torch.ones(12, 1, dtype=torch.int64)], dim=1)
    means = torch.randn(12, 3, generator=torch.Generator().manual_seed(4))
    directions = attribute_directions(means, attrs)
    assert torch.equal(directions[1], torch.zeros(3))
    assert directions[0].abs().sum() > 0


def test_projection_spread_and_unit_directions():
    g = torch.Generator().manual_seed(5)
    means = torch.stack([torch.randn(5000, generator=g) * 2.0, torch.randn(5000, generator=g) * 0.5], dim=1)
    directions = torch.tensor([[7.0, 0.0], [0.0, -0.1]])
    torch.testing.assert_close(unit_directions(directions).norm(dim=1), torch.ones(2))
    torch.testing.assert_close(projection_spread(means, directions), torch.tensor([2.0, 0.5]), rtol=0.05, atol=0)


def _bank() -> AttributeBank:
    attrs = torch.cat([_factorial(2, 10), torch.ones(40, 1, dtype=torch.int64)], dim=1)
    means = attrs[:, :2].float() @ torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    means = means + 0.1 * torch.randn(40, 3, generator=torch.Generator().manual_seed(6))
    return compute_bank(means, attrs, ["Smiling", "Eyeglasses", "Always"])


def test_bank_vector_combines_weighted_unit_steps():
    bank = _bank()
    steps = bank.steps
    torch.testing.assert_close(steps.norm(dim=1)[:2], bank.spread[:2])
    combined = bank.vector([("Smiling", 1.5), ("eyeglasses", 2.0)])  # names are case-insensitive
    torch.testing.assert_close(combined, 1.5 * steps[0] + 2.0 * steps[1])
    assert bank.vector({"Smiling": 1.0})[0] > 0  # points towards the attribute


def test_bank_rejects_unknown_and_constant_attributes():
    bank = _bank()
    with pytest.raises(FacevaeError, match="valid names: Smiling, Eyeglasses, Always"):
        bank.vector([("Smile", 1.0)])
    with pytest.raises(FacevaeError, match="always"):
        bank.vector([("Always", 1.0)])


def test_edit_latents_moves_each_face_by_each_strength():
    mu = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    v = torch.tensor([1.0, -2.0])
    z = edit_latents(mu, v, [-1.0, 0.0, 2.0])
    assert z.shape == (2, 3, 2)
    torch.testing.assert_close(z[1, 2], torch.tensor([3.0, -3.0]))
    torch.testing.assert_close(z[:, 1], mu)


def test_attribute_index():
    assert attribute_index(["Male", "Smiling"], "smiling") == 1
    with pytest.raises(FacevaeError, match=r"unknown attribute 'smilng' \(did you mean 'Smiling'\?\)"):
        attribute_index(["Male", "Smiling"], "smilng")
    with pytest.raises(FacevaeError) as no_match:
        attribute_index(["Male", "Smiling"], "Hat")
    assert "did you mean" not in str(no_match.value)  # nothing close: no guess


# ----------------------------------------------------------------------------- interpolation

def _pair(d=64, norm=None, seed=7):
    g = torch.Generator().manual_seed(seed)
    z0, z1 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    if norm is not None:
        z0, z1 = z0 / z0.norm() * norm, z1 / z1.norm() * norm
    return z0, z1


@pytest.mark.parametrize("mode", sorted(INTERPOLATIONS))
def test_paths_start_and_end_at_the_inputs(mode):
    z0, z1 = _pair()
    path = interpolate(z0, z1, 7, mode)
    assert path.shape == (7, 64)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)


def test_slerp_keeps_the_norm_of_equal_norm_inputs():
    z0, z1 = _pair(norm=5.0)
    path = slerp(z0, z1, torch.linspace(0, 1, 11, dtype=torch.float64))
    torch.testing.assert_close(path.norm(dim=-1), torch.full((11,), 5.0, dtype=torch.float64))
    # the straight line cuts the corner
    assert float(lerp(z0, z1, torch.tensor([0.5])).norm()) < 4.5


def test_slerp_midpoint_of_orthogonal_unit_vectors():
    e0, e1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    mid = slerp(e0, e1, torch.tensor([0.5]))[0]
    torch.testing.assert_close(mid, torch.tensor([1.0, 1.0, 0.0]) / math.sqrt(2))


def test_slerp_of_parallel_codes_is_the_straight_line():
    z0 = torch.tensor([1.0, 2.0, 2.0])
    t = torch.linspace(0, 1, 5)
    torch.testing.assert_close(slerp(z0, 3 * z0, t), lerp(z0, 3 * z0, t))


def test_linear_midpoint_is_the_average():
    z0, z1 = _pair(d=16)
    torch.testing.assert_close(interpolate(z0, z1, 3, "linear")[1], (z0 + z1) / 2)


def test_paths_of_batches_keep_rows_apart():
    g = torch.Generator().manual_seed(8)
    z0, z1 = torch.randn(4, 10, generator=g), torch.randn(4, 10, generator=g)
    path = interpolate(z0, z1, 5, "slerp")
    assert path.shape == (5, 4, 10)
    torch.testing.assert_close(path[:, 2], interpolate(z0[2], z1[2], 5, "slerp"))


def test_interpolate_rejects_bad_requests():
    z0, z1 = _pair(d=4)
    with pytest.raises(FacevaeError, match="linear, slerp"):
        interpolate(z0, z1, 5, "cubic")
    with pytest.raises(FacevaeError, match="at least 2"):
        interpolate(z0, z1, 1, "linear")
