"""The two-stage VAE sampler: it learns a non-Gaussian latent law, round-trips through
sampler files, fits deterministically, and rejects bad options with one-line errors."""
from __future__ import annotations

import pytest
import torch

from facevae.errors import FacevaeError
from tests.sampling.conftest import gen
from facevae.sampling import GaussianSampler, TwoStageSampler, build_sampler
from facevae.modelfiles.sampler_files import load_sampler, save_sampler

SEP = 2.5  # the two modes sit at -SEP and +SEP along dim 0, each with std 0.6 there
RIGHT_WEIGHT = 0.35
# Small enough for ~4 s on one CPU thread; lr is higher than the default to converge in fewer steps.
SMALL = {"hidden": 32, "depth": 2, "steps": 3000, "lr": 1e-2}




def bimodal(n: int = 4000, d: int = 8) -> torch.Tensor:
    """Two well-separated modes along dim 0, correlated Gaussian noise in the rest."""
    g = gen(1)
    right = torch.rand(n, generator=g, dtype=torch.float64) < RIGHT_WEIGHT
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.3 + 0.6 * torch.eye(d, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ mix.T
    x[:, 0] = torch.where(right, SEP, -SEP) + 0.6 * torch.randn(n, generator=g, dtype=torch.float64)
    x[:, 1] += right.double()
    return x.float()


def in_gap(z: torch.Tensor) -> float:
    return (z[:, 0].abs() < SEP / 3).double().mean().item()


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    return bimodal()


@pytest.fixture(scope="module")
def fitted(data: torch.Tensor) -> TwoStageSampler:
    return TwoStageSampler(**SMALL).fit(data)


def test_samples_are_bimodal_like_the_data(data: torch.Tensor, fitted: TwoStageSampler) -> None:
    z = fitted.sample(20000, gen(2)).double()
    gauss = GaussianSampler().fit(data).sample(20000, gen(2)).double()
    assert in_gap(data.double()) < 0.01
    # A single Gaussian puts a quarter of its mass between the modes; the second stage must not.
    assert in_gap(gauss) > 0.2 and in_gap(z) < 0.12
    assert (z[:, 0] > 0).double().mean().item() == pytest.approx(RIGHT_WEIGHT, abs=0.03)
    left, right = z[z[:, 0] < 0, 0].median().item(), z[z[:, 0] > 0, 0].median().item()
    assert left == pytest.approx(-SEP, abs=0.35) and right == pytest.approx(SEP, abs=0.35)


def test_samples_match_the_data_mean_and_covariance(data: torch.Tensor, fitted: TwoStageSampler) -> None:
    z, x = fitted.sample(20000, gen(3)).double(), data.double()
    assert torch.allclose(z.mean(0), x.mean(0), atol=0.1)
    cov_z, cov_x = torch.cov(z.mT), torch.cov(x.mT)
    # Decoding the mean of p(z|u) pulls samples in a little until gamma reaches 0: allow 20%.
    assert (torch.linalg.matrix_norm(cov_z - cov_x) / torch.linalg.matrix_norm(cov_x)).item() < 0.2
    assert fitted.gamma < 0.2 and fitted.final_loss == fitted.final_loss  # gamma fell from 1; loss is not NaN


def test_sample_shape_dtype_and_temperature(fitted: TwoStageSampler) -> None:
    z = fitted.sample(5, gen(4))
    assert z.shape == (5, 8) and z.dtype == torch.float32 and fitted.sample(0).shape == (0, 8)
    assert fitted.sample(4000, gen(5), temperature=0.3)[:, 1:].var(0).sum() < 0.5 * fitted.sample(4000, gen(5))[:, 1:].var(0).sum()


def test_saved_sampler_loads_and_samples_identically(fitted: TwoStageSampler, tmp_path) -> None:
    path = tmp_path / "two_stage.safetensors"
    save_sampler(fitted, path)
    loaded = load_sampler(path)
    assert isinstance(loaded, TwoStageSampler) and loaded.options() == fitted.options()
    assert loaded.final_loss == fitted.final_loss and loaded.gamma == fitted.gamma
    assert torch.equal(loaded.sample(256, gen(6)), fitted.sample(256, gen(6)))


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(data: torch.Tensor) -> None:
    fit = lambda seed: TwoStageSampler(hidden=16, steps=30, seed=seed).fit(data).state_dict()  # noqa: E731
    a, b, c = fit(0), fit(0), fit(1)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["decoder.head.weight"], c["decoder.head.weight"])


def test_fitting_leaves_the_global_rng_alone(data: torch.Tensor) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TwoStageSampler(hidden=8, steps=5).fit(data)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("bad", [{"hidden": 0}, {"steps": -1}, {"depth": 0}, {"batch_size": 2.5},
                                 {"lr": 0.0}, {"lr": float("nan")}, {"seed": -1}, {"hidden": True}])
def test_bad_options_raise_one_line(bad: dict) -> None:
    name = next(iter(bad))
    with pytest.raises(FacevaeError, match=name) as err:
        build_sampler("two_stage", 8, **bad)
    assert "\n" not in str(err.value)


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(FacevaeError, match="no option components; its options are: hidden"):
        build_sampler("two_stage", 8, components=3)


def test_sampling_before_fit_says_to_fit() -> None:
    with pytest.raises(FacevaeError, match="call fit"):
        TwoStageSampler().sample(4)


def test_divergence_is_reported_instead_of_a_nan_sampler(data: torch.Tensor) -> None:
    with pytest.raises(FacevaeError, match="diverged.*lower lr"):
        TwoStageSampler(hidden=8, steps=20, lr=1e6).fit(data * 1e3)


def test_state_of_another_shape_is_rejected(fitted: TwoStageSampler) -> None:
    with pytest.raises(FacevaeError, match="re-fit"):
        TwoStageSampler.from_state_dict(fitted.state_dict(), **{**fitted.options(), "hidden": 64})
    with pytest.raises(FacevaeError, match="re-fit"):
        TwoStageSampler.from_state_dict(fitted.state_dict(), **{**fitted.options(), "latent_dim": 4})


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_fit_works_inside_no_grad_and_inference_mode(mode):
    z = torch.randn(300, 4, generator=gen(0))
    with mode():
        s = TwoStageSampler(hidden=8, depth=1, steps=20).fit(z)
    assert s.fitted and torch.isfinite(s.sample(5, gen(1))).all()
