"""Fixtures for the web page tests: a tiny model trained on a slice of the mini CelebA, with attribute vectors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import mini_slice, tiny_config

N_TRAIN, N_VALID = 2000, 100
TRAIN_SETTINGS = ("train.max_steps=40", "train.batch_size=32", "data.draft=true", "data.workers=2")


@pytest.fixture(scope="session")
def web_data(celeba_root, tmp_path_factory) -> Path:
    return mini_slice(celeba_root, tmp_path_factory.mktemp("web_data") / "celeba", N_TRAIN, N_VALID)


@pytest.fixture(scope="session")
def web_run(web_data, tmp_path_factory) -> Path:
    """A run folder trained for a few steps, its attribute vectors and fitted samplers already stored beside it."""
    from facevae.latent.attributes import attribute_vectors
    from facevae.sampling.store import get_sampler
    from facevae.training.checkpoint import load_model
    from facevae.training.run import train

    run = tmp_path_factory.mktemp("web_run") / "run"
    threads = torch.get_num_threads()
    # one thread: tiny batches on a busy 2-core machine run several times faster than with two
    torch.set_num_threads(1)
    try:
        train(web_data, run, tiny_config(*TRAIN_SETTINGS), device="cpu", progress=False)
        model, cfg = load_model(run)
        attribute_vectors(run, model, cfg, data=web_data)
        for name in ("gaussian", "gmm"):
            get_sampler(run, model, cfg, name=name, data=web_data, progress=False)
        store_tiny_diffusion(run, model, cfg, web_data)
    finally:
        torch.set_num_threads(threads)
    return run


def store_tiny_diffusion(run: Path, model, cfg, data: Path) -> None:
    """The default diffusion fit takes minutes; a tiny fit stored under its name stands in for it."""
    from facevae.latent.encode import encode_images, split_images
    from facevae.sampling import DiffusionSampler, save_sampler
    from facevae.sampling.store import sampler_file, store_dirs

    means, _ = encode_images(model, split_images(data, "train", cfg, progress=False)[2])
    tiny = DiffusionSampler(cfg.model.latent_dim, hidden=16, steps=20, sample_steps=5).fit(means)
    save_sampler(tiny, store_dirs(run)[-1] / sampler_file("diffusion", 10, run))
