"""The memory estimate of models/size.py: exact parameter counts, and a one-line error when a model cannot fit."""
from __future__ import annotations

import pytest

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.models import build_model
from facevae.models.blocks import ACTIVATIONS, NORMS
from facevae.models.size import NORM_PARAMETERS, check_fits, needed_bytes, parameter_count

SMALL = ["model.image_size=32", "model.widths=[8,12,16]", "model.latent_dim=5"]


@pytest.mark.parametrize("settings", [
    [],
    ["model.block=resnet", "model.res_blocks=2"],
    ["model.block=resnet", "model.norm=group", "model.widths=[6,20,24]"],
    ["model.norm=none", "model.dropout=0.1"],
    ["model.kind=ae"],
    ["model.learned_sigma=true", "loss.recon=mse"],
    ["model.kind=ae", "model.block=resnet", "model.res_blocks=0", "model.widths=[4]"],
    ["model.image_size=64", "model.widths=[8,8,8,8]", "model.latent_dim=3"],
    *[[f"model.activation={a}", "model.block=resnet"] for a in ACTIVATIONS],
    *[[f"model.norm={n}", "model.block=resnet"] for n in NORMS],
])
def test_the_estimate_is_the_real_parameter_count(settings):
    cfg = RunConfig().override([*SMALL, *settings]).model
    assert parameter_count(cfg) == sum(p.numel() for p in build_model(cfg).parameters())


def test_every_norm_has_a_parameter_count():
    assert set(NORM_PARAMETERS) == set(NORMS)


def test_the_shipped_models_fit_a_laptop():
    for name in ("celeba64", "celeba64-quick", "celeba128"):
        cfg = RunConfig.load(name)
        check_fits(cfg.model, 4 * 10**9, cfg.train.batch_size, ema=True)


def test_training_needs_adam_state_and_loading_the_weights_alone():
    cfg = RunConfig().model
    n = parameter_count(cfg)
    assert needed_bytes(cfg) == (4 * n, 0)
    state, activations = needed_bytes(cfg, batch_size=8, ema=True)
    assert state == 20 * n and activations > 0
    assert needed_bytes(cfg, batch_size=16)[1] == 2 * activations


def test_a_huge_latent_dim_names_itself_and_what_fits():
    cfg = RunConfig().override(["model.latent_dim=100000000"]).model
    with pytest.raises(FacevaeError) as err:
        check_fits(cfg, 24 * 10**9, batch_size=64)
    message = str(err.value)
    assert message.startswith("model.latent_dim=100000000 needs about ")
    assert "GB for weights and Adam state; this machine has 24 GB: use model.latent_dim=" in message
    most = int(message.split("model.latent_dim=")[-1].split()[0])
    check_fits(RunConfig().override([f"model.latent_dim={most}"]).model, 24 * 10**9, batch_size=64)
    with pytest.raises(FacevaeError):
        check_fits(RunConfig().override([f"model.latent_dim={most + 1}"]).model, 24 * 10**9, batch_size=64)


def test_huge_widths_or_batch_are_named():
    wide = RunConfig().override(["model.widths=[65536,65536,65536,65536,65536]"]).model
    with pytest.raises(FacevaeError, match=r"^model\.widths=\[65536,65536,65536,65536,65536\] needs about .* "
                                           r"this GPU has 80 GB: use smaller model\.widths$"):
        check_fits(wide, 80 * 10**9, batch_size=64, where="this GPU")
    with pytest.raises(FacevaeError, match=r"^train\.batch_size=1000000 needs about .*: use train\.batch_size=\d+ or less"):
        check_fits(RunConfig().model, 24 * 10**9, batch_size=1_000_000)


def test_loading_names_the_checkpoint_and_unknown_memory_checks_nothing():
    cfg = RunConfig().override(["model.latent_dim=100000000"]).model
    with pytest.raises(FacevaeError, match=r"^the checkpoint's model \(model\.latent_dim=100000000\) needs about "
                                           r".* GB for its weights; this machine has 2\.0 GB: .*--ckpt$"):
        check_fits(cfg, 2 * 10**9)
    check_fits(cfg, None, batch_size=64)
