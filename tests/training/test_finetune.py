"""`finetune-decoder` on a tiny model: a frozen encoder, each loss switch, resume, and the sharp decoder in use."""
from __future__ import annotations

import pytest
import torch

import facevae
from facevae.errors import FacevaeError
from facevae.modelfiles import samplers as store
from facevae.modelfiles.checkpoint import load_model, load_state
from facevae.runfolder import RunFolder
from facevae.training.finetune import finetune_decoder

from tests.conftest import tiny_config, train_tiny


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny trained run with a fitted GMM, and its data."""
    run, data = train_tiny(tmp_path_factory)
    facevae.load(run, device="cpu", data=data).sampler("gmm", components=2)  # stored beside the run
    return run, data


def sharp(cfg, *sets):
    return cfg.override(list(sets)) if sets else cfg


@pytest.mark.parametrize("sets", [
    (),
    ("sharp.msssim_weight=0.5",),
    ("sharp.freq_weight=1.0", "sharp.pixel=gaussian"),
    ("sharp.adv_weight=0.5", "sharp.adaptive_every=2", "sharp.disc_widths=[8,16]"),
    ("sharp.adv_weight=0.5", "sharp.adv_loss=ns", "sharp.adaptive=false", "sharp.disc_norm=none",
     "sharp.r1_weight=1.0", "sharp.r1_every=1", "sharp.disc_widths=[8]", "sharp.msssim_weight=0.2"),
    ("sharp.decoder_widths=[16,32,64]", "sharp.adv_weight=0.1", "sharp.disc_widths=[8]", "sharp.latent=mean"),
    ("sharp.adv_weight=0.5", "sharp.adaptive_every=1", "sharp.adaptive_limit=1.0", "sharp.feature_weight=10.0",
     "sharp.disc_widths=[8,16]", "sharp.ema_decay=0.9"),
], ids=["pixel", "msssim", "freq", "adv-hinge", "adv-ns-r1", "wider", "adv-capped-features-ema"])
def test_each_loss_switch_trains_a_sharp_decoder_and_leaves_the_encoder_alone(source, tmp_path, sets):
    run, data = source
    before = load_model(run)
    out = tmp_path / "sharp"
    cfg = sharp(before.config, *sets)
    result = finetune_decoder(run, data, out, cfg, minutes=10, max_steps=3, device="cpu", progress=False)
    assert result.step == 3 and all(torch.isfinite(torch.tensor(v)) for v in result.last.values())
    if "sharp.adv_weight=0.5" in sets:
        assert "gen" in result.last and "disc" in result.last
    if "sharp.feature_weight=10.0" in sets:
        assert result.last["features"] > 0 and result.last["adv_scale"] <= 1.0
    # the copied weights are the source's bytes: same digest, so the same samplers and vectors apply
    assert RunFolder(out).weights.read_bytes() == before.weights.read_bytes()
    vae = facevae.load(out, device="cpu")
    assert vae.decoder == "sharp" and vae.weights_id == before.weights_id
    z = vae.sample_latents(4, seed=0)
    likelihood = facevae.load(out, device="cpu", decoder="likelihood")
    assert likelihood.decoder == "likelihood" and not torch.equal(vae.decode(z), likelihood.decode(z))


def test_the_source_samplers_are_reused_never_refitted(source, tmp_path, monkeypatch):
    run, data = source
    out = tmp_path / "sharp"
    finetune_decoder(run, data, out, load_model(run).config, minutes=10, max_steps=1, device="cpu", progress=False)
    monkeypatch.setattr(store, "fit_sampler", lambda *a, **k: pytest.fail("refitted a copied sampler"))
    faces = facevae.load(out, device="cpu").sample(3, sampler="gmm", components=2, seed=0)
    assert faces.shape == (3, 3, 32, 32)


def test_resume_continues_the_steps_and_a_second_start_is_refused(source, tmp_path):
    run, data = source
    out = tmp_path / "sharp"
    cfg = sharp(load_model(run).config, "sharp.adv_weight=0.5", "sharp.disc_widths=[8]")
    finetune_decoder(run, data, out, cfg, minutes=10, max_steps=2, device="cpu", progress=False)
    with pytest.raises(FacevaeError, match="--resume continues it"):
        finetune_decoder(run, data, out, cfg, minutes=10, max_steps=2, device="cpu", progress=False)
    again = finetune_decoder(out, data, out, cfg, minutes=10, max_steps=4, resume=True, device="cpu",
                             progress=False)
    assert again.step == 4
    from facevae.modelfiles.checkpoint import load_state
    from safetensors import safe_open

    assert load_state(out / "sharp_checkpoint.safetensors")[1]["step"] == 4
    with safe_open(str(out / "sharp_decoder.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == "4"


def test_a_sharp_decoder_is_refused_for_other_weights(source, tmp_path):
    run, data = source
    out = tmp_path / "sharp"
    finetune_decoder(run, data, out, load_model(run).config, minutes=10, max_steps=1, device="cpu", progress=False)
    other = tmp_path / "other"
    from facevae.training.run import train

    train(data, other, tiny_config("train.max_steps=1", "train.seed=7"), device="cpu", progress=False)
    (other / "sharp_decoder.safetensors").write_bytes((out / "sharp_decoder.safetensors").read_bytes())
    with pytest.raises(FacevaeError, match="trained for other weights"):
        facevae.load(other, device="cpu")
    assert facevae.load(other, device="cpu", decoder="likelihood").decoder == "likelihood"
    with pytest.raises(FacevaeError, match="has no sharp decoder"):
        facevae.load(run, device="cpu", decoder="sharp")


def test_the_source_model_cannot_change(source, tmp_path):
    run, data = source
    cfg = load_model(run).config.override(["model.latent_dim=4"])
    with pytest.raises(FacevaeError, match="keeps the source's model"):
        finetune_decoder(run, data, tmp_path / "x", cfg, minutes=1, max_steps=1, device="cpu", progress=False)


def test_a_diverged_decoder_is_never_written_nor_loaded(source, tmp_path, monkeypatch):
    from facevae.training import finetune

    run, data = source
    out = tmp_path / "sharp"
    finetune_decoder(run, data, out, load_model(run).config, minutes=10, max_steps=1, device="cpu", progress=False)
    good = (out / "sharp_decoder.safetensors").read_bytes()
    real_step = finetune.SharpTrainer.train_step

    def poisoned(self, z, real):
        result = real_step(self, z, real)
        with torch.no_grad():
            self.decoder.to_rgb.weight.fill_(float("nan"))
        return result

    monkeypatch.setattr(finetune.SharpTrainer, "train_step", poisoned)
    with pytest.raises(FacevaeError, match="diverged by step 2"):
        finetune_decoder(out, data, out, load_model(run).config, minutes=10, max_steps=2, resume=True,
                         device="cpu", progress=False)
    assert (out / "sharp_decoder.safetensors").read_bytes() == good
    from facevae.modelfiles.decoders import save_sharp_decoder
    from facevae.modelfiles.decoders import load_sharp_decoder

    broken, cfg = load_sharp_decoder(load_model(out))
    with torch.no_grad():
        broken.to_rgb.bias.fill_(float("inf"))
    save_sharp_decoder(out / "sharp_decoder.safetensors", cfg, broken, load_model(out).digest, 1)
    with pytest.raises(FacevaeError, match="holds NaN or inf"):
        facevae.load(out, device="cpu")


def test_resume_refuses_another_network_shape(source, tmp_path):
    run, data = source
    out = tmp_path / "sharp"
    cfg = load_model(run).config
    finetune_decoder(run, data, out, cfg, minutes=10, max_steps=1, device="cpu", progress=False)
    with pytest.raises(FacevaeError, match="another sharp.decoder_widths"):
        finetune_decoder(out, data, out, cfg.override(["sharp.decoder_widths=[16,32,64]"]), minutes=10,
                         max_steps=2, resume=True, device="cpu", progress=False)
    with pytest.raises(FacevaeError, match="no fine-tuning to resume"):
        finetune_decoder(run, data, tmp_path / "fresh", cfg, minutes=1, resume=True, device="cpu", progress=False)


def test_with_an_ema_the_saved_decoder_is_the_average_and_resume_keeps_it(source, tmp_path):
    from facevae.modelfiles.decoders import load_sharp_decoder

    run, data = source
    cfg = load_model(run).config.override(["sharp.ema_decay=0.5", "sharp.lr=0.01"])
    out = tmp_path / "sharp"
    finetune_decoder(run, data, out, cfg, minutes=10, max_steps=2, device="cpu", progress=False)
    saved = load_sharp_decoder(load_model(out), required=True)[0].state_dict()
    _, state = load_state(RunFolder(out).sharp_checkpoint)
    name = next(k for k, v in state["decoder"].items() if v.is_floating_point() and "weight" in k)
    torch.testing.assert_close(saved[name], state["ema"][name].float())
    assert not torch.equal(state["ema"][name], state["decoder"][name])  # the live weights moved on alone
    finetune_decoder(out, data, out, cfg, minutes=10, max_steps=3, resume=True, device="cpu", progress=False)
    _, resumed = load_state(RunFolder(out).sharp_checkpoint)
    # step 3 averages into the saved average; a restart would average from the resumed live weights instead
    after = torch.lerp(state["ema"][name].float(), resumed["decoder"][name].float(), 1 - min(0.5, 3 / 12))
    torch.testing.assert_close(resumed["ema"][name].float(), after)
    with pytest.raises(FacevaeError, match=r"another sharp.ema_decay \(on/off\)"):
        finetune_decoder(out, data, out, cfg.override(["sharp.ema_decay=0"]), minutes=10, max_steps=4,
                         resume=True, device="cpu", progress=False)


def test_feature_matching_without_a_discriminator_is_refused_at_once():
    from facevae.config import RunConfig

    with pytest.raises(FacevaeError, match="sharp.feature_weight .* sharp.adv_weight"):
        RunConfig().override(["sharp.feature_weight=10"])


def test_the_sharp_decoder_is_in_eval_mode_after_loading(source, tmp_path):
    run, data = source
    out = tmp_path / "sharp"
    finetune_decoder(run, data, out, load_model(run).config, minutes=10, max_steps=2, device="cpu", progress=False)
    vae = facevae.load(out, device="cpu")
    z = vae.sample_latents(4, seed=0)
    torch.testing.assert_close(vae.decode(z)[:1], vae.decode(z[:1]))  # BatchNorm uses its running statistics
