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
    from facevae.tasks.edit import attribute_vectors
    from facevae.tasks.store import get_sampler
    from facevae.training.checkpoint import load_model
    from facevae.training.run import train

    run = tmp_path_factory.mktemp("web_run") / "run"
    threads = torch.get_num_threads()
    # one thread: tiny batches on a busy 2-core machine run several times faster than with two
    torch.set_num_threads(1)
    try:
        train(web_data, run, tiny_config(*TRAIN_SETTINGS), device="cpu", progress=False)
        loaded = load_model(run)
        attribute_vectors(loaded, data=web_data)
        for name in ("gaussian", "gmm"):
            get_sampler(loaded, name=name, data=web_data, progress=False)
        store_tiny_diffusion(loaded, web_data)
    finally:
        torch.set_num_threads(threads)
    return run


def store_tiny_diffusion(loaded, data: Path) -> None:
    """The default diffusion fit takes minutes; a tiny fit stored under its name stands in for it."""
    from facevae.sampling import DiffusionSampler
    from facevae.tasks.encode import encode_images, load_split
    from facevae.tasks.sampler_files import save_sampler
    from facevae.tasks.store import sampler_file, store_dirs

    cfg = loaded.config
    means, _ = encode_images(loaded.model, load_split(data, "train", cfg, progress=False)[2])
    tiny = DiffusionSampler(cfg.model.latent_dim, hidden=16, steps=20, sample_steps=5).fit(means)
    save_sampler(tiny, store_dirs(loaded)[-1] / sampler_file("diffusion", 10, loaded))
