"""The one reader of FACEVAE_CACHE: every cache (images, FID stats, latents, samplers) agrees on it."""
from __future__ import annotations

from pathlib import Path

from facevae.io import user_cache


def test_user_cache_expands_home_and_treats_empty_as_unset(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FACEVAE_CACHE", "~/faces")
    assert user_cache("fid") == tmp_path / "faces" / "fid"
    monkeypatch.setenv("FACEVAE_CACHE", "")
    assert user_cache() == tmp_path / ".cache" / "facevae"
    monkeypatch.delenv("FACEVAE_CACHE")
    assert user_cache("bundled") == Path(tmp_path / ".cache" / "facevae" / "bundled")


def test_image_cache_and_fid_stats_share_the_root(monkeypatch, tmp_path):
    from facevae.metrics import fid
    from facevae.modelfiles.samplers import store_dirs

    monkeypatch.setenv("FACEVAE_CACHE", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    root = tmp_path / ".cache" / "facevae"
    assert fid.stats_cache_path({"k": 1}).parent == root / "fid"
    from facevae.modelfiles.checkpoint import load_model

    assert store_dirs(load_model(None))[-1] == root / "bundled"


def test_empty_cache_variable_keeps_the_image_cache_out_of_the_working_folder(monkeypatch, tmp_path, fake_celeba):
    from facevae.data import cached_images, open_dataset

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("FACEVAE_CACHE", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    cached_images(open_dataset(fake_celeba), 32, 148, workers=1, progress=False)
    assert list(work.iterdir()) == []
    assert list((tmp_path / ".cache" / "facevae").glob("*.npy"))
