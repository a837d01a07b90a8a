"""Fixtures for the web page tests: a tiny model trained on a slice of the mini CelebA, with attribute vectors."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_config

N_TRAIN, N_VALID = 2000, 100
TRAIN_SETTINGS = ("train.max_steps=40", "train.batch_size=32", "data.draft=true", "data.workers=2")


def mini_slice(src: Path, dst: Path, n_train: int = N_TRAIN, n_valid: int = N_VALID) -> Path:
    """A CelebA folder with the first training and validation images of `src` (symlinked, annotations cut down)."""
    images = dst / "img_align_celeba"
    images.mkdir(parents=True)
    partition = (src / "list_eval_partition.txt").read_text().splitlines()
    rows = [line.split() for line in partition if line.strip()]
    keep = [f for f, p in rows if p == "0"][:n_train] + [f for f, p in rows if p == "1"][:n_valid]
    for name in keep:
        os.symlink(src / "img_align_celeba" / name, images / name)
    wanted = set(keep)

    def kept(lines: list[str]) -> list[str]:
        return [ln for ln in lines if ln.split(" ", 1)[0] in wanted]

    (dst / "list_eval_partition.txt").write_text("\n".join(kept(partition)) + "\n")
    attrs = (src / "list_attr_celeba.txt").read_text().splitlines()
    (dst / "list_attr_celeba.txt").write_text("\n".join([str(len(keep)), attrs[1], *kept(attrs[2:])]) + "\n")
    return dst


@pytest.fixture(scope="session")
def web_data(celeba_root, tmp_path_factory) -> Path:
    return mini_slice(celeba_root, tmp_path_factory.mktemp("web_data") / "celeba")


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
    finally:
        torch.set_num_threads(threads)
    return run
