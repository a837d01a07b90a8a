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
