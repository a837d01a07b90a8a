"""`--model NAME`: every command that takes a model takes a bundled one by name (issue 25)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import facevae.cli  # noqa: F401  (registers the commands on the app)
from facevae.cli.app import app
from facevae.cli.train_generate import model_source
from facevae.errors import FacevaeError
from facevae.modelfiles import BUNDLED_NAMES
from facevae.modelfiles.checkpoint import bundled_weights
from tests.cli.test_cli import assert_user_error, facevae
from tests.conftest import make_celeba


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("model-option") / "celeba", n=24)


def _commands(data: Path, tmp: Path) -> dict[str, list[str]]:
    """Each command that takes a model, with the other arguments it needs to reach the model.

    The files go in a folder that does not exist yet: refusing a bad name must not make it."""
    return {
        "sample": ["sample", "--out", tmp / "sub" / "s.png"],
        "reconstruct": ["reconstruct", "--data", data, "--out", tmp / "sub" / "r.png"],
        "edit": ["edit", "--data", data, "--attribute", "Smiling", "--out", tmp / "sub" / "e.png"],
        "interpolate": ["interpolate", "--seed", "0", "--out", tmp / "sub" / "i.png"],
        "latents": ["latents", "--data", data, "--out", tmp / "lat"],
        "evaluate": ["evaluate", "--data", data, "--out", tmp / "ev"],
        "export": ["export", "--out", tmp / "hub"],
        "finetune-decoder": ["finetune-decoder", "--data", data, "--out", tmp / "ft", "--minutes", "1"],
        "serve": ["serve", "--no-align"],
    }


COMMANDS = ["sample", "reconstruct", "edit", "interpolate", "latents", "evaluate", "export", "finetune-decoder", "serve"]
MODULES = {"sample": "train_generate", "reconstruct": "train_generate", "edit": "latent", "interpolate": "latent",
           "latents": "latent", "evaluate": "evaluate", "export": "export", "finetune-decoder": "finetune",
           "serve": "serve"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_model_command_loads_what_model_names(command, data, tmp_path, monkeypatch):
    """What `model_source` returns is what each command loads: a stand-in path shows up in the load's error."""
    import importlib

    if command == "serve":
        pytest.importorskip("gradio")
    stand_in = tmp_path / "stand-in-for-the-bundle.safetensors"
    module = importlib.import_module(f"facevae.cli.{MODULES[command]}")
    monkeypatch.setattr(module, "model_source", lambda ckpt, model: stand_in if model == "celeba64" else ckpt)
    args = _commands(data, tmp_path)[command]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--model", "celeba64"]])
    assert isinstance(result.exception, FacevaeError), result.output
    assert "stand-in-for-the-bundle" in str(result.exception)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_model_command_refuses_an_unknown_bundled_name_listing_the_names(command, data, tmp_path):
    args = _commands(data, tmp_path)[command]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--model", "celeba256"]])
    assert isinstance(result.exception, FacevaeError), result.output
    message = str(result.exception)
    assert "celeba256" in message and f"the bundled models are: {', '.join(BUNDLED_NAMES)}" in message
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_unknown_name_is_one_line_and_exit_2_from_the_shell(tmp_path):
    result = facevae("sample", "--model", "celeba256", "--out", tmp_path / "s.png")
    assert_user_error(result, "no bundled model is called 'celeba256'", "the bundled models are: celeba64")
    assert not (tmp_path / "s.png").exists()


def test_model_and_ckpt_together_are_refused(tmp_path):
    with pytest.raises(FacevaeError, match="not both"):
        model_source(tmp_path, "celeba64")


def test_model_names_the_bundled_weights_even_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "celeba64").mkdir()  # a local folder would win for --ckpt celeba64; --model means the bundle
    assert model_source(None, "celeba64") == bundled_weights("celeba64")
    assert model_source(Path("runs/x"), None) == Path("runs/x")


def test_a_listed_bundle_missing_from_the_install_says_to_reinstall(monkeypatch, tmp_path):
    from facevae.modelfiles import checkpoint

    monkeypatch.setattr(checkpoint, "bundled_weights", lambda name: tmp_path / f"{name}.safetensors")
    with pytest.raises(FacevaeError, match="the bundled model celeba64 is missing from this install: reinstall"):
        model_source(None, "celeba64")


def test_sample_with_model_draws_what_the_default_draws(tmp_path):
    for name, extra in (("default.png", []), ("named.png", ["--model", "celeba64"])):
        result = CliRunner().invoke(app, ["sample", "--n", "4", "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "default.png") as a, Image.open(tmp_path / "named.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_celeba128_by_model_or_ckpt_name_draws_the_same_128px_faces(tmp_path):
    for name, extra in (("model.png", ["--model", "celeba128"]), ("ckpt.png", ["--ckpt", "celeba128"]),
                        ("c64.png", ["--model", "celeba64"])):
        result = CliRunner().invoke(app, ["sample", "--n", "4", "--seed", "1", "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "model.png") as a, Image.open(tmp_path / "ckpt.png") as b, \
            Image.open(tmp_path / "c64.png") as c:
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert a.width >= 2 * 128 and a.width > 1.9 * c.width  # the same grid of faces twice as large


def test_export_of_celeba128_writes_its_card(tmp_path):
    from facevae.modelfiles.checkpoint import load_model

    result = CliRunner().invoke(app, ["export", "--model", "celeba128", "--out", str(tmp_path / "hub")])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "128x128" in card and load_model("celeba128").weights_id in card


def test_celeba128_gif_keeps_its_faces_at_128px_where_64px_ones_are_doubled(tmp_path):
    heights = {}
    for name in ("celeba64", "celeba128"):
        gif = tmp_path / f"{name}.gif"
        result = CliRunner().invoke(app, ["interpolate", "--model", name, "--seed", "0", "--steps", "3",
                                          "--out", str(tmp_path / f"{name}.png"), "--gif", str(gif)])
        assert result.exit_code == 0, result.output
        with Image.open(gif) as im:
            heights[name] = im.height
    assert 128 <= heights["celeba128"] < 160 and 128 <= heights["celeba64"] < 160  # one row of faces and its padding


def test_a_small_photo_for_celeba128_is_enlarged_with_a_note_on_stderr(tmp_path):
    photo = tmp_path / "small.png"  # the crop takes 148/178 of it: 83 px, enough for celeba64, not for celeba128
    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(photo)
    result = facevae("reconstruct", "--model", "celeba128", "--images", photo, "--no-align", "--out", tmp_path / "r.png")
    assert result.returncode == 0, result.stderr
    assert (f"note: {photo}: the square the model takes from the 100x100 photo is only 83 pixels across: "
            "it is enlarged to 128x128 for this 128 px model") in result.stderr
    quiet = facevae("reconstruct", "--model", "celeba64", "--images", photo, "--no-align", "--out", tmp_path / "q.png")
    assert quiet.returncode == 0 and "note:" not in quiet.stderr  # 83 px covers celeba64's 64
