"""`facevae serve --ckpt RUN --data DIR` on a GPU: samplers are fitted on the model's device."""
from __future__ import annotations

import dataclasses

import torch

from facevae.api import FaceVAE
from facevae.errors import FacevaeError
from facevae.models import build_model
from facevae.modelfiles.checkpoint import load_model, save_weights
from facevae.web.explorer import load_samplers

from tests.conftest import tiny_config


def test_sampler_fits_encode_on_the_models_device(fake_celeba, tmp_path, monkeypatch):
    import facevae.data.encode as encode

    cfg = tiny_config()
    model = build_model(cfg.model)
    save_weights(tmp_path / "run" / "model.safetensors", cfg, model.state_dict())
    seen = []

    def encoder_sees(model, images, device="cpu", batch_size=256):
        seen.append(torch.device(device))
        raise FacevaeError("stop here: only the device matters")

    monkeypatch.setattr(encode, "encode_images", encoder_sees)
    # "meta" stands in for cuda: any device but the CPU makes a mismatch visible
    loaded = dataclasses.replace(load_model(tmp_path / "run"), model=model.to("meta"))
    samplers, note = load_samplers(FaceVAE(loaded, data=fake_celeba))
    assert seen and all(d == torch.device("meta") for d in seen)
    assert list(samplers) == ["prior", "shifted"] and "gaussian" in note  # the two that need no fit
