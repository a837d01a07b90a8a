import pytest

from facevae.config import RunConfig, all_keys
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


def test_the_quick_recipe_is_the_celeba64_model_on_a_step_budget():
    quick, full = RunConfig.load("celeba64-quick"), RunConfig.load("celeba64")
    quick.validate()
    assert quick.model == full.model  # the same faces, just less trained
    assert quick.train.max_steps * quick.train.batch_size == 128_000  # ~10 min at 220-374 images/s on 2 cores
