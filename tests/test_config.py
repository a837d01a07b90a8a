import pytest

from facevae.config import CHOICES, LIMITS, RunConfig, all_keys, choices
from facevae.errors import FacevaeError


def test_yaml_round_trip_keeps_every_value():
    cfg = RunConfig().override(["model.widths=[16,32]", "model.image_size=64", "loss.beta=0.5", "train.compile=true"])
    again = RunConfig.from_yaml(cfg.to_yaml())
    assert again == cfg
    assert again.model.widths == (16, 32)
    assert again.train.compile is True


def test_override_parses_types():
    cfg = RunConfig().override(["train.lr=3e-4", "train.epochs=7", "data.flip=false", "model.widths=8,16,32"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.train.epochs == 7
    assert cfg.data.flip is False
    assert cfg.model.widths == (8, 16, 32)


def test_config_is_frozen():
    with pytest.raises(Exception):
        RunConfig().model.latent_dim = 3


@pytest.mark.parametrize("item,match", [
    ("model.latnt_dim=3", "unknown config key 'model.latnt_dim'"),
    ("modl.latent_dim=3", "unknown config key"),
    ("latent_dim=3", "section.key=value"),
    ("train.epochs=abc", "expects int"),
    ("model.image_size=100", "unsupported image size 100"),
    ("model.widths=[8,16,32,64,128,256,512]", "too many"),
])
def test_bad_overrides_are_user_errors(item, match):
    with pytest.raises(FacevaeError, match=match):
        RunConfig().override([item])


def test_unknown_key_in_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  latent_dim: 16\n  colour: red\n")
    with pytest.raises(FacevaeError, match="model.colour"):
        RunConfig.load(p)


def test_missing_config_file(tmp_path):
    with pytest.raises(FacevaeError, match="does not exist"):
        RunConfig.load(tmp_path / "nope.yaml")


def test_all_keys_lists_sections():
    keys = all_keys()
    assert "model.latent_dim" in keys and "train.lr" in keys and "loss.beta" in keys and "data.crop" in keys


def test_shipped_configs_load_by_name():
    c64, c128 = RunConfig.load("celeba64"), RunConfig.load("celeba128")
    assert c64.model.image_size == 64 and c128.model.image_size == 128
    assert len(c128.model.widths) == len(c64.model.widths) + 1
    with pytest.raises(FacevaeError, match="celeba64"):
        RunConfig.load("celeba65")


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_enumerated_field_rejects_a_bad_name_listing_the_valid_ones(key):
    valid = choices(key)
    assert valid, key
    with pytest.raises(FacevaeError, match=f"unknown {key} 'bogus'; choose one of: {', '.join(valid)}$"):
        RunConfig().override([f"{key}=bogus"])
    for name in valid:  # and every registry name is accepted (learned_sigma needs mse)
        extra = ["loss.recon=mse"] if key != "loss.recon" else []
        assert getattr(getattr(RunConfig().override([*extra, f"{key}={name}"]), key.split(".")[0]),
                       key.split(".")[1]) == name


# the registry that builds each enumerated field; config keeps its names as literals (no import cycle)
REGISTRIES = {
    "model.kind": ("facevae.models.vae", "MODEL_KINDS"),
    "model.block": ("facevae.models.vae", "BLOCKS"),
    "model.norm": ("facevae.models.blocks", "NORMS"),
    "model.activation": ("facevae.models.blocks", "ACTIVATIONS"),
    "loss.recon": ("facevae.decoders", "RECON_LOSSES"),
    "train.optimizer": ("facevae.training.options", "OPTIMIZERS"),
    "train.schedule": ("facevae.training.options", "SCHEDULES"),
    "train.precision": ("facevae.training.options", "PRECISIONS"),
    "sharp.pixel": ("facevae.sharp_losses", "PIXEL_LOSSES"),
    "sharp.adv_loss": ("facevae.sharp_losses", "ADV_LOSSES"),
    "sharp.disc_norm": ("facevae.models.discriminator", "DISC_NORMS"),
    "sharp.latent": ("facevae.sharp_losses", "LATENTS"),
}


def test_every_enumerated_field_has_a_registry():
    assert sorted(REGISTRIES) == sorted(CHOICES)


@pytest.mark.parametrize("key", sorted(REGISTRIES))
def test_config_names_equal_the_registry_keys_in_order(key):
    import importlib

    module, attribute = REGISTRIES[key]
    assert tuple(getattr(importlib.import_module(module), attribute)) == CHOICES[key]


@pytest.mark.parametrize("item,match", [
    ("train.ckpt_every=0", "'train.ckpt_every' must be >= 1, got 0"),
    ("train.log_every=0", "'train.log_every' must be >= 1, got 0"),
    ("train.batch_size=0", "'train.batch_size' must be >= 1, got 0"),
    ("train.batch_size=-4", "'train.batch_size' must be >= 1, got -4"),
    ("model.widths=[]", "'model.widths' is empty"),
    ("model.widths=[8,0]", "'model.widths' must be >= 1"),
    ("data.workers=-1", "'data.workers' must be >= 0, got -1"),
    ("train.lr=-1", "'train.lr' must be > 0, got -1.0"),
    ("train.lr=.nan", "'train.lr' must be a finite number, got nan"),
    ("train.lr=.inf", "'train.lr' must be a finite number, got inf"),
    ("model.dropout=2", "'model.dropout' must be >= 0, < 1, got 2.0"),
    ("model.latent_dim=0", "'model.latent_dim' must be >= 1, got 0"),
    ("loss.sigma=0", "'loss.sigma' must be > 0"),
    ("train.ema_decay=1", "'train.ema_decay' must be >= 0, < 1"),
])
def test_out_of_range_values_fail_when_the_config_is_built(item, match):
    with pytest.raises(FacevaeError, match=match):
        RunConfig().override([item])


def test_every_limit_names_a_real_numeric_key():
    for key in LIMITS:
        assert key in all_keys(), key
    for key in CHOICES:
        assert key in all_keys(), key


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_a_bad_name_stops_train_before_the_run_folder_is_made(tmp_path, key):
    from typer.testing import CliRunner

    from facevae.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--out", str(out), "--set", f"{key}=bogus"])
    assert isinstance(result.exception, FacevaeError)
    assert f"choose one of: {', '.join(choices(key))}" in str(result.exception)
    assert not out.exists()


def test_the_quick_recipe_is_the_celeba64_model_on_a_step_budget():
    quick, full = RunConfig.load("celeba64-quick"), RunConfig.load("celeba64")
    quick.validate()
    assert quick.model == full.model  # the same faces, just less trained
    assert quick.train.max_steps * quick.train.batch_size == 128_000  # ~10 min at 220-374 images/s on 2 cores


def test_a_mistyped_key_or_name_gets_did_you_mean():
    with pytest.raises(FacevaeError, match=r"unknown config key 'train\.lrr' \(did you mean 'train\.lr'\?\); valid keys"):
        RunConfig().override(["train.lrr=1"])
    with pytest.raises(FacevaeError, match=r"unknown model\.norm 'btach' \(did you mean 'batch'\?\); choose one of"):
        RunConfig().override(["model.norm=btach"])


def test_the_likelihood_recipe_has_a_discretised_gaussian_decoder_and_the_bce_caveat_names_it():
    from facevae.decoders import decoder_distribution
    from facevae.metrics.likelihood import bits_per_dim_caveat

    sigma, seed = RunConfig.load("celeba64-sigma"), RunConfig.load("celeba64")
    assert sigma.model.learned_sigma and sigma.loss.recon == "mse"
    assert sigma.model.widths == seed.model.widths and sigma.model.latent_dim == seed.model.latent_dim
    assert "gaussian" in decoder_distribution(sigma.loss.recon).description.lower()
    assert "--config celeba64-sigma" in bits_per_dim_caveat("bce")
    assert "celeba64-sigma" not in bits_per_dim_caveat("mse")


def test_the_celeba128_sigma_config_is_the_bundled_celeba128_recipe():
    import dataclasses

    from facevae.modelfiles.checkpoint import read_config

    shipped, bundled = RunConfig.load("celeba128-sigma"), read_config("celeba128")
    assert (shipped.model, shipped.loss, shipped.data) == (bundled.model, bundled.loss, bundled.data)
    differ = {f.name for f in dataclasses.fields(shipped.train)
              if getattr(shipped.train, f.name) != getattr(bundled.train, f.name)}
    assert differ == {"epochs", "max_steps", "ckpt_every"}  # 20 epochs, where the bundle counted 15,000 steps
