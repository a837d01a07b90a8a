"""Fixtures for the web page tests: a tiny model trained on a slice of the mini CelebA, with attribute vectors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import mini_slice, tiny_config

N_TRAIN, N_VALID = 2000, 100
TRAIN_SETTINGS = ("train.max_steps=40", "train.batch_size=32", "data.draft=true", "data.workers=2")
# Tiny fits, stored where `serve --data` looks first: left to itself it would fit the default
# 4,000-step two-stage sampler, which took most of the suite's time on a loaded 2-core machine.
TINY_FITS = {"gaussian": {}, "gmm": {"components": 10}, "two_stage": {"hidden": 16, "steps": 40},
             "diffusion": {"hidden": 16, "steps": 20, "sample_steps": 5}}


@pytest.fixture(scope="session")
def web_data(celeba_root, tmp_path_factory) -> Path:
    return mini_slice(celeba_root, tmp_path_factory.mktemp("web_data") / "celeba", N_TRAIN, N_VALID)


@pytest.fixture(scope="session")
def web_run(web_data, tmp_path_factory) -> Path:
    """A run folder trained for a few steps, its attribute vectors and fitted samplers already stored beside it."""
    from facevae.sampling import build_sampler
    from facevae.modelfiles.attributes import attribute_vectors
    from facevae.data.encode import encode_images, load_split
    from facevae.modelfiles.sampler_files import save_sampler
    from facevae.modelfiles.samplers import sampler_file, store_dirs
    from facevae.modelfiles.checkpoint import load_model
    from facevae.training.run import train

    run = tmp_path_factory.mktemp("web_run") / "run"
    threads = torch.get_num_threads()
    # one thread: tiny batches on a busy 2-core machine run several times faster than with two
    torch.set_num_threads(1)
    try:
        train(web_data, run, tiny_config(*TRAIN_SETTINGS), device="cpu", progress=False)
        loaded = load_model(run)
        cfg = loaded.config
        attribute_vectors(loaded, data=web_data)
        means, _ = encode_images(loaded.model, load_split(web_data, "train", cfg, progress=False)[2])
        for name, options in TINY_FITS.items():
            fitted = build_sampler(name, cfg.model.latent_dim, **options).fit(means)
            save_sampler(fitted, store_dirs(loaded)[-1] / sampler_file(name, options.get("components", 10), loaded))
    finally:
        torch.set_num_threads(threads)
    return run
