"""A model too large for memory: one `error:` line, exit 2, before anything is allocated (real processes)."""
from __future__ import annotations

import pytest

from tests.cli.test_cli import assert_user_error, facevae
from tests.conftest import make_celeba


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_celeba(tmp_path_factory.mktemp("size") / "celeba", n=8)


@pytest.mark.parametrize("item", ["model.latent_dim=100000000", "model.widths=[65536,65536,65536,65536,65536]"])
def test_a_model_too_large_for_memory_is_refused_before_anything_is_allocated(tmp_path, data, item):
    out = tmp_path / "r"
    r = facevae("train", "--data", data, "--out", out, "--config", "celeba64-quick", "--set", item, "--device", "cpu")
    assert_user_error(r, f"error: {item} needs about ", " GB for weights and Adam state; this machine has ", " GB: use ")
    assert not out.exists()


def test_a_checkpoint_whose_model_cannot_fit_is_refused_before_it_is_built(tmp_path):
    import torch

    from facevae.config import RunConfig
    from facevae.modelfiles.checkpoint import save_weights

    weights = tmp_path / "huge.safetensors"
    save_weights(weights, RunConfig().override(["model.latent_dim=100000000"]), {"w": torch.zeros(1)})
    assert_user_error(facevae("sample", "--ckpt", weights, "--n", "4", "--out", tmp_path / "x.png"),
                      "the checkpoint's model (model.latent_dim=100000000) needs about", "pick another --ckpt")
