"""Evaluation orchestration: FID against cached references, latent health, the report and the CLI."""
from __future__ import annotations

import json
import math
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.errors import FacevaeError
from facevae.metrics import fid
from facevae.metrics import evaluate as ev
from facevae.metrics.latent_health import aggregate_posterior_kl, latent_health
from tests.conftest import mini_slice, tiny_config


# ----------------------------------------------------------------------------- pure parts

@pytest.mark.parametrize("n", [12, 40, 100])  # fewer rows than dims, and more (the full formula)
def test_fid_to_reference_matches_the_frechet_distance(n):
    rng = np.random.default_rng(n)
    mix = rng.standard_normal((64, 64)) / 8
    ref = rng.standard_normal((80, 64)) @ mix
    x = rng.standard_normal((n, 64)) @ mix + 0.2
    mu, sigma = fid.stats_of(ref)
    expected = fid.frechet_distance(*fid.stats_of(x), mu, sigma)
    assert ev.fid_to_reference(x, mu, sigma) == pytest.approx(expected, rel=1e-7)


def test_subset_is_seeded_sorted_and_capped():
    idx = np.arange(100, 200)
    a, b = ev.subset(idx, 10), ev.subset(idx, 10)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 10 and np.all(np.diff(a) > 0) and set(a) <= set(idx)
    np.testing.assert_array_equal(ev.subset(idx, 0), idx)
    np.testing.assert_array_equal(ev.subset(idx, 500), idx)


def test_aggregate_kl_is_zero_when_moments_match_the_prior():
    # Hadamard sign patterns: zero-mean, uncorrelated dims of population variance 1/2, plus posterior
    # variance 1/2: the aggregate moments are exactly N(0, I)
    signs = torch.tensor([[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], dtype=torch.float64)
    means = math.sqrt(0.5) * signs
    logvars = torch.full_like(means, math.log(0.5))
    assert aggregate_posterior_kl(means, logvars) == pytest.approx(0.0, abs=1e-12)


def test_aggregate_kl_closed_form_for_a_wide_posterior():
    # means all 0, variances 2: S = 2I, KL = L/2 (2 - 1 - ln 2)
    means, logvars = torch.zeros(5, 4), torch.full((5, 4), math.log(2.0))
    assert aggregate_posterior_kl(means, logvars) == pytest.approx(4 * 0.5 * (1 - math.log(2)), rel=1e-6)


def test_latent_health_counts_active_units_and_kl():
    g = torch.Generator().manual_seed(0)
    n = 400
    means = torch.cat([torch.randn(n, 2, generator=g), 0.01 * torch.randn(n, 3, generator=g)], dim=1)
    logvars = torch.cat([torch.full((n, 2), -3.0), torch.zeros(n, 3)], dim=1)
    h = latent_health(means, logvars)
    assert h["active_units"] == 2 and h["latent_dim"] == 5 and h["images"] == n
    kl = h["kl"]
    # the three collapsed dims sit at the prior: KL ~ 0.5 * 1e-4 each
    assert kl["dims_above"] == 2
    per_dim = torch.tensor(h["kl_per_dim"], dtype=torch.float64)
    expected = 0.5 * (means.double().pow(2).mean(0) + logvars.double().exp().mean(0) - 1 - logvars.double().mean(0))
    torch.testing.assert_close(per_dim, expected)
    assert kl["total"] == pytest.approx(float(expected.sum())) and kl["max"] == pytest.approx(float(expected.max()))
    ae = latent_health(means, torch.full_like(means, -math.inf), deterministic=True)
    assert ae["kl"] is None and ae["active_units"] == 2 and math.isfinite(ae["aggregate_kl"])


def test_bad_options_fail_before_any_work():
    with pytest.raises(FacevaeError, match="unknown sampler"):
        ev._check_options(ev.EvalOptions(samplers=("prior", "flow")))
    with pytest.raises(FacevaeError, match="at least 2"):
        ev._check_options(ev.EvalOptions(fid_samples=1))
    with pytest.raises(FacevaeError, match="fid-reference-images"):
        ev._check_options(ev.EvalOptions(fid_reference_images=-1))


def test_slow_cpu_defaults_are_announced_with_the_quick_flags():
    from facevae.cli.evaluate import QUICK_FLAGS, cpu_time_warning

    warning = cpu_time_warning(ev.EvalOptions(device="cpu"))  # the defaults: 10,000 samples per sampler
    assert warning.startswith("warning: FID here sends about 60,000 images") and QUICK_FLAGS in warning
    assert cpu_time_warning(ev.EvalOptions(device="cpu", fid_samples=200, samplers=("prior", "gmm"))) is None
    assert cpu_time_warning(ev.EvalOptions(device="cpu", fid_samples=0)) is None


def test_cli_user_error_is_one_line(monkeypatch, capsys, tmp_path):
    from facevae.cli import main

    monkeypatch.setattr(sys, "argv", ["facevae", "evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "e"),
                                      "--samplers", "prior,nope"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown sampler 'nope'") and "\n" not in err


# ----------------------------------------------------------------------------- on the mini CelebA

@pytest.fixture(scope="module")
def mini(celeba_root, tmp_path_factory):
    return mini_slice(celeba_root, tmp_path_factory.mktemp("mini"), n_train=320, n_valid=48)


@pytest.fixture(scope="module")
def tiny_run(mini, tmp_path_factory):
    """A 32 px VAE trained for 40 steps on the subset (a few seconds)."""
    from facevae.training.run import train

    run = tmp_path_factory.mktemp("run")
    train(mini, run, tiny_config("train.max_steps=40", "train.epochs=0"), device="cpu", progress=False)
    return run


@pytest.mark.slow
def test_fid_orders_real_reconstructed_and_noise(mini, tiny_run, inception):
    from facevae.data import load_images, open_dataset
    from facevae.metrics.recon import reconstruct_uint8
    from facevae.training.checkpoint import load_model

    model, cfg = load_model(tiny_run)
    ds = open_dataset(mini)
    images = load_images(ds, cfg.model.image_size, cfg.data.crop, workers=1, progress=False)
    train_idx = ds.split_indices("train")
    # 4 x 24 images through Inception (~20 s on two free cores); measured margins at this size:
    # real 128 < reconstructions 372 < noise 441
    n = 24
    half_a = torch.from_numpy(images[train_idx[:n]])
    half_b = torch.from_numpy(images[train_idx[n:2 * n]])
    feats = {name: fid.features_of(x, inception, progress=False) for name, x in {
        "a": half_a, "b": half_b, "recon": reconstruct_uint8(model, half_b),
        "noise": ev.noise_images(n, cfg.model.image_size)}.items()}
    ref = fid.stats_of(feats["a"])
    real, rec, noise = (ev.fid_to_reference(feats[k], *ref) for k in ("b", "recon", "noise"))
    assert real < rec < noise, (real, rec, noise)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.mark.slow
def test_cli_writes_metrics_and_a_self_contained_report(mini, tiny_run, inception, tmp_path):
    from typer.testing import CliRunner

    from facevae.cli.app import app

    out = tmp_path / "eval"
    args = ["evaluate", "--ckpt", str(tiny_run), "--data", str(mini), "--out", str(out), "--fid-samples", "4",
            "--fid-reference-images", "6", "--samplers", "prior,gaussian", "--iw-samples", "4", "--likelihood-images", "8", "--device", "cpu",
            "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "FID prior:" in result.output and "(4 samples vs 6 train images)" in result.output

    m = json.loads((out / "metrics.json").read_text())
    assert set(m["fid"]["samplers"]) == {"prior", "gaussian"}
    for f in m["fid"]["samplers"].values():
        assert f["count"] == 4 and f["reference_count"] == 6 and f["fid"] > 0
    rec = m["fid"]["reconstructions"]
    assert rec["count"] == 4 and rec["reference_count"] == 4 and rec["reference_split"] == "valid"
    lk = m["likelihood"]
    assert lk["images"] == 8 and lk["k"] == 4 and lk["dims"] == 3 * 32 * 32
    assert lk["iwae_nll"]["bits_per_dim"] == pytest.approx(lk["iwae_nll"]["nats"] / (3 * 32 * 32 * math.log(2)))
    assert m["reconstruction"]["images"] == 48 and m["latent"]["images"] == 48
    assert m["protocol"]["step"] == 40

    page = (out / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    local = [link for link in parser.links if "://" not in link and not link.startswith("#")]
    assert {"metrics.json", "samples_prior.png", "samples_gaussian.png", "reconstructions.png"} <= set(local)
    for link in local:
        assert not Path(link).is_absolute() and (out / link).is_file(), link
    assert "$" not in page  # every template field was filled
