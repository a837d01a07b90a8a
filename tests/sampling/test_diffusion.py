"""The diffusion prior: it learns a known 2-D mixture (moments and mode weights), fits
deterministically from a seed inside callers' inference mode, honours temperature,
round-trips through sampler files and the store, and rejects bad options in one line."""
from __future__ import annotations

import pytest
import torch

from facevae.errors import FacevaeError
from tests.sampling.conftest import gen
from facevae.sampling import DiffusionSampler, GaussianSampler, build_sampler
from facevae.modelfiles.sampler_files import load_sampler, save_sampler

WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
CENTRES = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=torch.float64)
SPREAD = 0.35  # each mode's std per axis: the modes sit > 8 spreads apart
# A few seconds on one CPU thread; lr is higher than the default to converge in fewer steps.
SMALL = {"hidden": 64, "depth": 2, "steps": 1000, "lr": 5e-3, "sample_steps": 40}
TINY = {"hidden": 16, "depth": 1, "steps": 30, "sample_steps": 5}


def mixture(n: int = 4000) -> torch.Tensor:
    g = gen(1)
    mode = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    return (CENTRES[mode] + SPREAD * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()


def nearest_mode(z: torch.Tensor) -> torch.Tensor:
    return torch.cdist(z.double(), CENTRES).argmin(1)


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    return mixture()


@pytest.fixture(scope="module")
def fitted(data: torch.Tensor) -> DiffusionSampler:
    return DiffusionSampler(**SMALL).fit(data)


@pytest.fixture(scope="module")
def samples(fitted: DiffusionSampler) -> torch.Tensor:
    return fitted.sample(8000, gen(2)).double()


def test_samples_match_the_mixture_mean_and_covariance(data: torch.Tensor, samples: torch.Tensor) -> None:
    x = data.double()
    assert torch.allclose(samples.mean(0), x.mean(0), atol=0.12)
    cov_z, cov_x = torch.cov(samples.mT), torch.cov(x.mT)
    assert (torch.linalg.matrix_norm(cov_z - cov_x) / torch.linalg.matrix_norm(cov_x)).item() < 0.1


def test_samples_keep_the_modes_their_weights_and_widths(data: torch.Tensor, samples: torch.Tensor) -> None:
    mode = nearest_mode(samples)
    weights = torch.bincount(mode, minlength=3).double() / len(samples)
    assert torch.allclose(weights, WEIGHTS, atol=0.03)
    for k in range(3):
        z = samples[mode == k]
        assert torch.allclose(z.mean(0), CENTRES[k], atol=0.1)
        assert torch.allclose(z.std(0), torch.full((2,), SPREAD, dtype=torch.float64), rtol=0.3)
    # A single Gaussian with the same moments fills the space between the modes; the diffusion prior must not.
    far = lambda z: (torch.cdist(z.double(), CENTRES).min(1).values > 4 * SPREAD).double().mean().item()
    assert far(GaussianSampler().fit(data).sample(10_000, gen(2))) > 0.3 and far(samples) < 0.03


def test_samples_keep_the_spread_of_a_correlated_24d_gaussian() -> None:
    # An eps-predicting net's small error at alpha_bar ~ 0 is amplified into samples ~1.5x too wide here.
    g = gen(7)
    a = torch.randn(24, 24, generator=g, dtype=torch.float64) / 24**0.5
    chol = torch.linalg.cholesky(a @ a.mT + 0.05 * torch.eye(24, dtype=torch.float64))
    x = (torch.randn(4000, 24, generator=g, dtype=torch.float64) @ chol.mT).float()
    fit = DiffusionSampler(hidden=64, depth=2, steps=600, lr=5e-3, sample_steps=20).fit(x)
    z, x = fit.sample(2000, gen(8)).double(), x.double()
    ratio = z.std(0) / x.std(0)
    assert 0.8 < ratio.min().item() and ratio.max().item() < 1.15
    cov_z, cov_x = torch.cov(z.mT), torch.cov(x.mT)
    assert (torch.linalg.matrix_norm(cov_z - cov_x) / torch.linalg.matrix_norm(cov_x)).item() < 0.3


def test_temperature_scales_the_starting_noise(fitted: DiffusionSampler, samples: torch.Tensor) -> None:
    assert "temperature" not in fitted.options() and not hasattr(fitted, "temperature")  # per call, not state
    spread = lambda t: torch.cov(fitted.sample(2000, gen(3), temperature=t).double().mT).trace().item()
    # DDIM maps the noise deterministically: colder noise gives fewer, more typical latents (and T = 0 one)
    assert spread(0.0) < 1e-9 and spread(0.5) < 0.6 * spread(1.0) < 0.6 * spread(1.2)
    assert fitted.sample(5, gen(4)).shape == (5, 2) and fitted.sample(0).shape == (0, 2)
    assert fitted.sample(5, gen(4)).dtype == torch.float32


def test_fit_is_reproducible_from_its_seed_inside_inference_mode(data: torch.Tensor) -> None:
    before = torch.random.get_rng_state()
    a = DiffusionSampler(**TINY, seed=3).fit(data)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG stream is left alone
    with torch.inference_mode():
        b = DiffusionSampler(**TINY, seed=3).fit(data)
    c = DiffusionSampler(**TINY, seed=4).fit(data)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["net.inp.weight"], sc["net.inp.weight"])
    assert torch.equal(a.sample(64, gen(5)), b.sample(64, gen(5)))


def test_saved_sampler_loads_and_samples_identically(fitted: DiffusionSampler, tmp_path) -> None:
    path = tmp_path / "diffusion.safetensors"
    save_sampler(fitted, path)
    loaded = load_sampler(path)
    assert isinstance(loaded, DiffusionSampler) and loaded.options() == fitted.options()
    assert loaded.final_loss == fitted.final_loss and float(loaded.clip) == float(fitted.clip)
    assert torch.equal(loaded.sample(256, gen(6)), fitted.sample(256, gen(6)))


def test_a_half_precision_file_is_half_the_size_and_samples_alike(fitted: DiffusionSampler, tmp_path) -> None:
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_sampler(fitted, full)
    save_sampler(fitted, half, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_sampler(half)
    assert all(v.dtype != torch.float16 for v in loaded.state_dict().values())
    assert float(loaded.clip) == float(fitted.clip)  # vectors and scalars are stored exactly
    a, b = loaded.sample(256, gen(6)), fitted.sample(256, gen(6))
    assert a.dtype == b.dtype and not torch.equal(a, b)
    assert (a - b).abs().max() < 0.05 * b.abs().max()


def test_weights_that_do_not_fit_the_options_are_rejected(fitted: DiffusionSampler) -> None:
    with pytest.raises(FacevaeError, match="do not fit hidden=32"):
        DiffusionSampler.from_state_dict(fitted.state_dict(), **{**fitted.options(), "hidden": 32})


@pytest.mark.parametrize("option, value", [("timesteps", 0), ("sample_steps", 2000), ("ema", 1.0),
                                           ("steps", 0), ("lr", -1.0), ("seed", -1)])
def test_bad_options_raise_one_line(option: str, value) -> None:
    with pytest.raises(FacevaeError, match=option) as err:
        build_sampler("diffusion", 4, **{option: value})
    assert "\n" not in str(err.value)
