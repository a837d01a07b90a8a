"""The committed mini-CelebA reference: it matches the protocol's data and is chosen by default."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from facevae.config import RunConfig
from facevae.data import open_dataset
from facevae.metrics import fid
from facevae.tasks import evaluate as ev

SHIPPED = fid.committed_reference_dir() / "celeba_mini-train-c148-64px.npz"


def _extractor():
    return SimpleNamespace(identity=fid.inception_identity())


def test_shipped_file_holds_the_protocol_statistics():
    mu, sigma, protocol = fid.load_reference(SHIPPED)
    assert (protocol["split"], protocol["count"], protocol["crop"], protocol["image_size"]) == ("train", 24012, 148, 64)
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
    assert np.array_equal(sigma, sigma.T) and np.all(np.diag(sigma) >= 0)
    assert SHIPPED.stat().st_size <= 9 * 2 ** 20


def test_mini_celeba_evaluation_uses_the_whole_split_from_the_shipped_file(celeba_root):
    ds, cfg = open_dataset(celeba_root), RunConfig.load("celeba64")
    opts = ev._protocol_default(ds, cfg, _extractor(), ev.EvalOptions(fid_samples=2000))
    assert opts.fid_reference_images == 0
    assert ev._committed_references(ds, cfg, _extractor(), opts)["samples"] == SHIPPED


def test_other_data_keeps_the_sample_sized_reference(celeba_root):
    ds, cfg = open_dataset(celeba_root), RunConfig.load("celeba64")
    one_less = replace(ds, filenames=ds.filenames[1:], partition=ds.partition[1:])  # the first train image gone
    opts = ev._protocol_default(one_less, cfg, _extractor(), ev.EvalOptions(fid_samples=2000))
    assert opts.fid_reference_images is None
    cropped = cfg.override(["data.crop=160"])
    assert ev._protocol_default(ds, cropped, _extractor(), ev.EvalOptions()).fid_reference_images is None


def test_resumable_features_continue_where_a_run_stopped(tmp_path):
    import torch

    calls = []

    def extractor(batch):  # stands in for Inception: one distinct row per image
        return batch.reshape(len(batch), -1)[:, :1].double().repeat(1, fid.FEATURE_DIM)

    def images_of(start, stop):
        calls.append((start, stop))
        return torch.arange(start, stop, dtype=torch.uint8).reshape(-1, 1, 1, 1).repeat(1, 3, 2, 2)

    first, _ = ev.resumable_features(tmp_path, 7, images_of, extractor, chunk=3)
    assert calls == [(0, 3), (3, 6), (6, 7)] and first[:, 0].tolist() == list(range(7))
    (tmp_path / "features-000003.npy").unlink()  # as if killed while that chunk was featurised
    again, _ = ev.resumable_features(tmp_path, 7, images_of, extractor, chunk=3)
    assert calls[3:] == [(3, 6)] and np.array_equal(again, first)


def test_a_128px_model_is_refused_the_64px_statistics_naming_the_field(celeba_root):
    import pytest

    from facevae.errors import FacevaeError

    ds = open_dataset(celeba_root)
    cfg = RunConfig.load("celeba128")
    wanted = ev.wanted_protocol(ds, "train", 0, cfg, fid.inception_identity())
    with pytest.raises(FacevaeError, match=r"stored vs wanted: image_size: 64 vs 128\)") as err:
        ev.committed_reference(wanted, explicit=SHIPPED)
    assert "\n" not in str(err.value)


def test_the_128px_file_holds_the_protocol_statistics_and_is_chosen_for_128px(celeba_root):
    shipped128 = fid.committed_reference_dir() / "celeba_mini-train-c148-128px.npz"
    mu, sigma, protocol = fid.load_reference(shipped128)
    assert (protocol["split"], protocol["count"], protocol["crop"], protocol["image_size"]) == ("train", 24012, 148, 128)
    assert mu.shape == (2048,) and np.array_equal(sigma, sigma.T) and np.all(np.diag(sigma) >= 0)
    assert shipped128.stat().st_size <= 9 * 2 ** 20
    same_data = {k: v for k, v in protocol.items() if k != "image_size"}
    assert same_data == {k: v for k, v in fid.load_reference(SHIPPED)[2].items() if k != "image_size"}
    wanted = ev.wanted_protocol(open_dataset(celeba_root), "train", 0, RunConfig.load("celeba128"), fid.inception_identity())
    assert ev.committed_reference(wanted) == shipped128


def test_a_given_reference_file_counts_its_own_images_so_only_the_size_is_refused(celeba_root):
    import pytest

    from facevae.errors import FacevaeError

    ds, cfg = open_dataset(celeba_root), RunConfig.load("celeba128")
    opts = ev._protocol_default(ds, cfg, _extractor(), ev.EvalOptions(fid_samples=2000, fid_reference_stats=SHIPPED))
    assert opts.fid_reference_images == 0  # the file covers the whole train split, not --fid-samples of it
    with pytest.raises(FacevaeError, match=r"\(stored vs wanted: image_size: 64 vs 128\): drop the option"):
        ev._committed_references(ds, cfg, _extractor(), opts)


def test_cli_refuses_the_64px_file_for_celeba128_naming_image_size_only(celeba_root, inception, monkeypatch,
                                                                        capsys, tmp_path):
    import sys

    import pytest

    from facevae.cli import main

    monkeypatch.setattr(ev, "load_images", lambda *a, **k: pytest.fail("work started before the reference was checked"))
    monkeypatch.setattr(sys, "argv", ["facevae", "evaluate", "--model", "celeba128", "--data", str(celeba_root),
                                      "--out", str(tmp_path / "e"), "--fid-reference-stats", str(SHIPPED),
                                      "--device", "cpu", "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --fid-reference-stats {SHIPPED} does not match") and "\n" not in err
    assert "(stored vs wanted: image_size: 64 vs 128)" in err and "count" not in err
