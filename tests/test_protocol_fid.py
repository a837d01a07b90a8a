"""benchmarks/protocol_fid.py draws with the decoder it is told to: a sharp decoder's FID rows are its own."""
from __future__ import annotations

import importlib.util

import pytest
import torch

import facevae
from facevae.errors import FacevaeError
from facevae.modelfiles.checkpoint import load_model
from facevae.training.finetune import finetune_decoder

from tests.conftest import REPO, train_tiny

spec = importlib.util.spec_from_file_location("protocol_fid", REPO / "benchmarks" / "protocol_fid.py")
protocol_fid = importlib.util.module_from_spec(spec)
spec.loader.exec_module(protocol_fid)


def test_the_sharp_decoder_draws_the_images_and_the_likelihood_one_stays_the_default(tmp_path_factory):
    run, data = train_tiny(tmp_path_factory)
    out = tmp_path_factory.mktemp("sharp") / "run"
    finetune_decoder(run, data, out, load_model(run).config, minutes=10, max_steps=2, device="cpu", progress=False)
    loaded = load_model(out)
    z = torch.randn(4, loaded.config.model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        likelihood = protocol_fid.drawing_model(loaded, "likelihood").decode(z)
        sharp = protocol_fid.drawing_model(loaded, "sharp").decode(z)
        own = loaded.model.decode(z)
    assert torch.equal(likelihood, own) and not torch.equal(sharp, own)
    expected = facevae.load(out, device="cpu", decoder="sharp").decode(z)
    assert torch.allclose(sharp, expected, atol=1e-6)
    with pytest.raises(FacevaeError, match="no sharp decoder"):
        protocol_fid.drawing_model(load_model(run), "sharp")
