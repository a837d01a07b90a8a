"""Behaviour of the latent samplers: recovery of known distributions, temperature,
state round-trips, the registry, sampler files and the mixture density."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from facevae.errors import FacevaeError
from tests.sampling.conftest import gen
from facevae.sampling import (
    SAMPLERS,
    DiffusionSampler,
    GaussianSampler,
    GMMSampler,
    PriorSampler,
    TwoStageSampler,
    build_sampler,
)
from facevae.modelfiles.sampler_files import load_sampler, save_sampler

TRUE_WEIGHTS = torch.tensor([0.3, 0.7], dtype=torch.float64)
TRUE_MEANS = torch.tensor([[-3.0, 0.0, 1.0], [3.0, 1.0, -1.0]], dtype=torch.float64)
TRUE_COVS = torch.tensor([
    [[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]],
    [[0.5, -0.2, 0.0], [-0.2, 2.0, 0.3], [0.0, 0.3, 1.0]],
], dtype=torch.float64)




def two_component_data(n: int = 6000) -> torch.Tensor:
    g = gen(1)
    comp = torch.multinomial(TRUE_WEIGHTS, n, replacement=True, generator=g)
    eps = torch.randn(n, 3, dtype=torch.float64, generator=g)
    chol = torch.linalg.cholesky(TRUE_COVS)
    return (TRUE_MEANS[comp] + (chol[comp] @ eps.unsqueeze(-1)).squeeze(-1)).float()


def empirical_cov(z: torch.Tensor) -> torch.Tensor:
    return torch.cov(z.double().mT)


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    return two_component_data()


@pytest.fixture(scope="module")
def gmm(latents: torch.Tensor) -> GMMSampler:
    return GMMSampler(components=2, seed=0).fit(latents)


def test_em_recovers_known_two_component_mixture(gmm: GMMSampler) -> None:
    order = gmm.means[:, 0].argsort()  # EM may label the components either way
    assert gmm.converged and 0 < gmm.n_iter < gmm.iters
    assert torch.allclose(gmm.weights[order], TRUE_WEIGHTS, atol=0.02)
    assert torch.allclose(gmm.means[order], TRUE_MEANS, atol=0.1)
    assert torch.allclose(gmm.covariances[order], TRUE_COVS, atol=0.12)


def test_em_separates_overlapping_components_that_kmeans_cannot() -> None:
    # A tight blob inside a wide one: k-means splits them by position, only EM's
    # iterations recover the nested structure.
    weights = torch.tensor([0.4, 0.6], dtype=torch.float64)
    means = torch.tensor([[0.0, 0.0], [1.5, 0.5]], dtype=torch.float64)
    covs = torch.tensor([[[0.2, 0.05], [0.05, 0.1]], [[3.0, -1.0], [-1.0, 2.0]]], dtype=torch.float64)
    g = gen(11)
    comp = torch.multinomial(weights, 8000, replacement=True, generator=g)
    eps = torch.randn(8000, 2, dtype=torch.float64, generator=g)
    z = (means[comp] + (torch.linalg.cholesky(covs)[comp] @ eps.unsqueeze(-1)).squeeze(-1)).float()
    fit = GMMSampler(components=2, seed=0, tol=1e-6, iters=500).fit(z)
    order = fit.covariances.diagonal(dim1=1, dim2=2).sum(1).argsort()
    assert fit.converged and fit.n_iter > 5
    assert torch.allclose(fit.weights[order], weights, atol=0.02)
    assert torch.allclose(fit.means[order], means, atol=0.05)
    assert torch.allclose(fit.covariances[order], covs, atol=0.1)


def test_em_is_deterministic_for_a_seed_and_reports_its_likelihood(latents: torch.Tensor, gmm: GMMSampler) -> None:
    again = GMMSampler(components=2, seed=0).fit(latents)
    assert torch.equal(again.means, gmm.means) and again.n_iter == gmm.n_iter
    # The fit's float32 E-step and the float64 log_prob agree on the same mixture.
    assert gmm.mean_log_likelihood == pytest.approx(gmm.log_prob(latents).mean().item(), abs=1e-4)


def test_float64_precision_matches_float32_fit(latents: torch.Tensor, gmm: GMMSampler) -> None:
    exact = GMMSampler(components=2, seed=0, precision="float64").fit(latents)
    assert torch.allclose(exact.means, gmm.means, atol=1e-4)
    assert torch.allclose(exact.covariances, gmm.covariances, atol=1e-4)


def test_gmm_log_prob_matches_scipy_mixture_density() -> None:
    z = two_component_data(300)[:, :2]
    sampler = GMMSampler(components=3, seed=2, precision="float64").fit(z)
    points = torch.tensor([[0.0, 0.0], [-3.0, 0.5], [3.0, 1.0], [10.0, -7.0]], dtype=torch.float64)
    w, mu, cov = (t.numpy() for t in (sampler.weights, sampler.means, sampler.covariances))
    density = sum(w[j] * multivariate_normal(mu[j], cov[j]).pdf(points.numpy()) for j in range(3))
    np.testing.assert_allclose(sampler.log_prob(points).numpy(), np.log(density), rtol=1e-9, atol=1e-9)


def test_gmm_sampling_follows_weights_and_temperature(gmm: GMMSampler) -> None:
    z = gmm.sample(20000, gen(3), temperature=0.5).double()
    first = z[:, 0] < 0  # the components are 6 std apart along dim 0
    k = int(gmm.means[:, 0].argmin())
    assert first.double().mean().item() == pytest.approx(gmm.weights[k].item(), abs=0.015)
    assert torch.allclose(z[first].mean(0), gmm.means[k], atol=0.03)
    assert torch.allclose(empirical_cov(z[first]), 0.25 * gmm.covariances[k], atol=0.03)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.5])
def test_prior_temperature_scales_the_std(temperature: float) -> None:
    z = PriorSampler(8).sample(40000, gen(4), temperature=temperature)
    assert z.shape == (40000, 8) and z.dtype == torch.float32
    assert z.mean().item() == pytest.approx(0.0, abs=0.01 * temperature)
    assert torch.allclose(z.std(0), torch.full((8,), temperature), rtol=0.02)


def test_shifted_prior_moves_the_mean_by_half_and_keeps_the_std() -> None:
    from facevae.sampling.prior import ShiftedPriorSampler

    shifted = build_sampler("shifted", 8)
    z = shifted.sample(40000, gen(4), temperature=0.5)
    base = PriorSampler(8).sample(40000, gen(4), temperature=0.5)
    assert torch.equal(z, base + 0.5)  # the same draws, moved: a FID gap between them is the shift alone
    assert torch.allclose(z.mean(0), torch.full((8,), 0.5), atol=0.01)
    assert shifted.options() == {"latent_dim": 8, "shift": 0.5}
    assert ShiftedPriorSampler(8, shift=-1.0).sample(3, gen(0), temperature=0.0).eq(-1.0).all()
    with pytest.raises(FacevaeError, match="finite number"):
        ShiftedPriorSampler(8, shift=float("nan"))


def test_samplers_that_fit_nothing_say_what_they_draw_from() -> None:
    unfitted = {name: cls.description for name, cls in SAMPLERS.items() if not cls.fits_latents}
    assert set(unfitted) == {"prior", "shifted"} and all(unfitted.values())
    assert "N(0, I)" in unfitted["prior"] and "moved" in unfitted["shifted"]


def test_prior_fit_records_the_latent_size() -> None:
    prior = PriorSampler().fit(torch.zeros(5, 6))
    assert prior.latent_dim == 6 and prior.sample(3).shape == (3, 6)
    with pytest.raises(FacevaeError, match="6 dims"):
        PriorSampler(4).fit(torch.zeros(5, 6))


def test_gaussian_sampler_recovers_mean_and_covariance() -> None:
    mean = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    a = torch.randn(4, 4, dtype=torch.float64, generator=gen(5))
    cov = a @ a.mT + 0.1 * torch.eye(4, dtype=torch.float64)
    data = torch.distributions.MultivariateNormal(mean, cov).sample((50000,)).float()
    sampler = GaussianSampler().fit(data)
    assert torch.allclose(sampler.mean, mean, atol=0.05)
    assert torch.allclose(sampler.covariance, cov, atol=0.1 * cov.abs().max().item())
    z = sampler.sample(50000, gen(6), temperature=2.0)
    assert torch.allclose(empirical_cov(z), 4 * empirical_cov(data), atol=0.5)


def test_gaussian_sampler_survives_a_collapsed_dimension() -> None:
    data = torch.randn(1000, 3, generator=gen(7))
    data[:, 2] = 0.25  # an inactive latent dim: singular covariance without jitter
    z = GaussianSampler().fit(data).sample(100, gen(8))
    assert torch.isfinite(z).all() and torch.allclose(z[:, 2], torch.full((100,), 0.25), atol=1e-2)


@pytest.fixture(scope="module")
def fitted(latents: torch.Tensor, gmm: GMMSampler) -> dict:
    return {"prior": PriorSampler(3).fit(latents), "gaussian": GaussianSampler().fit(latents), "gmm": gmm,
            "two_stage": TwoStageSampler(hidden=16, steps=20).fit(latents),
            "diffusion": DiffusionSampler(hidden=16, steps=20, sample_steps=5).fit(latents),
            "shifted": build_sampler("shifted", shift=0.25).fit(latents)}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_state_dict_round_trip_gives_identical_samples(name: str, fitted: dict) -> None:
    sampler = fitted[name]
    twin = type(sampler).from_state_dict(sampler.state_dict(), **sampler.options())
    assert torch.equal(twin.sample(64, gen(9), temperature=0.8), sampler.sample(64, gen(9), temperature=0.8))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_temperature_is_per_call_and_not_sampler_state(name: str, fitted: dict) -> None:
    sampler = fitted[name]
    assert "temperature" not in sampler.options() and not hasattr(sampler, "temperature")
    hot, cold = sampler.sample(2000, gen(11), temperature=1.0), sampler.sample(2000, gen(11), temperature=0.3)
    assert torch.equal(sampler.sample(2000, gen(11)), hot)  # a colder call left no trace
    assert cold.var(0).sum() < 0.9 * hot.var(0).sum()
    with pytest.raises(FacevaeError, match="temperature must be a number >= 0"):
        sampler.sample(4, temperature=-1.0)


def test_file_with_a_stored_temperature_still_loads(fitted: dict, tmp_path) -> None:
    """Sampler files written while temperature was sampler state (the bundled fits) keep loading."""
    import json

    from safetensors.torch import save_file

    sampler, path = fitted["gaussian"], tmp_path / "old.safetensors"
    meta = {"format": "facevae.sampler/1", "sampler": "gaussian",
            "options": json.dumps({**sampler.options(), "temperature": 0.7})}
    save_file({k: v.contiguous() for k, v in sampler.state_dict().items()}, str(path), metadata=meta)
    assert torch.equal(load_sampler(path).sample(8, gen(12)), sampler.sample(8, gen(12)))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_saved_sampler_loads_and_samples_identically(name: str, fitted: dict, tmp_path) -> None:
    sampler, path = fitted[name], tmp_path / f"{name}.safetensors"
    save_sampler(sampler, path)
    save_sampler(sampler, path)  # overwriting goes through a temp file and leaves nothing behind
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    loaded = load_sampler(path)
    assert type(loaded) is type(sampler) and loaded.options() == sampler.options()
    assert torch.equal(loaded.sample(64, gen(10)), sampler.sample(64, gen(10)))
    if name == "gmm":
        assert loaded.n_iter == sampler.n_iter and loaded.mean_log_likelihood == sampler.mean_log_likelihood


def test_unknown_sampler_name_lists_the_valid_ones() -> None:
    with pytest.raises(FacevaeError, match="unknown sampler 'flow'; choose one of: prior, gaussian, gmm"):
        build_sampler("flow", 8)


def test_build_sampler_passes_options_and_rejects_unknown_ones() -> None:
    sampler = build_sampler("gmm", 16, components=4)
    assert isinstance(sampler, GMMSampler) and sampler.options()["components"] == 4
    assert sampler.latent_dim == 16
    with pytest.raises(FacevaeError, match="no option colour"):
        build_sampler("gaussian", 16, colour="red")


def test_sampling_before_fit_says_to_fit() -> None:
    with pytest.raises(FacevaeError, match="call fit"):
        GMMSampler(components=2).sample(4)


def test_missing_or_corrupt_sampler_file_raises_one_line(tmp_path) -> None:
    with pytest.raises(FacevaeError, match="fit a sampler and save it") as missing:
        load_sampler(tmp_path / "nope.safetensors")
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(FacevaeError, match="delete it and fit the sampler again") as bad:
        load_sampler(corrupt)
    assert "\n" not in str(missing.value) + str(bad.value)


def test_file_with_foreign_metadata_is_rejected(tmp_path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path), metadata={"sampler": "gmm", "options": "{}"})
    with pytest.raises(FacevaeError, match="re-fit and save it again"):
        load_sampler(path)
