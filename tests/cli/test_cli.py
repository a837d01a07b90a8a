"""The command line as a user meets it: real processes, exit codes and one-line errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_celeba, tiny_config, write_jpeg


def facevae(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "facevae", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder with a tiny trained model, made through the Python API (fast)."""
    from facevae.training.run import train

    root = make_celeba(tmp_path_factory.mktemp("data") / "celeba", n=24)
    run = tmp_path_factory.mktemp("runs") / "tiny"
    train(root, run, tiny_config("train.max_steps=2"), device="cpu", progress=False)
    return run


def test_help_for_each_command():
    for cmd in ("train", "sample", "reconstruct"):
        r = facevae(cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout and "--out" in r.stdout


def test_help_shows_flags_as_flag_slash_no_flag_without_type_tags():
    from typer.testing import CliRunner

    import facevae.cli  # noqa: F401  (registers the commands)
    from facevae.cli.app import app

    runner = CliRunner()
    helps = {c.callback.__name__: runner.invoke(app, [c.name or c.callback.__name__, "--help"], terminal_width=200)
             for c in app.registered_commands}
    assert {"train", "edit", "evaluate", "serve"} <= set(helps)
    for name, r in helps.items():
        assert r.exit_code == 0, name
        assert "<bool>" not in r.output and "<list" not in r.output, (name, r.output)
    assert "--progress / --no-progress" in helps["train"].output
    assert "--set KEY=VALUE" in helps["train"].output and "--attribute NAME[=W]" in helps["edit"].output


def test_missing_data_path(tmp_path):
    assert_user_error(facevae("train", "--data", tmp_path / "nope", "--out", tmp_path / "r"), "does not exist")


def test_folder_that_is_not_celeba(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("hi")
    assert_user_error(facevae("train", "--data", tmp_path / "d", "--out", tmp_path / "r"), "not a CelebA folder")


def test_missing_annotation_file(tmp_path):
    root = make_celeba(tmp_path / "c", n=6)
    (root / "list_attr_celeba.txt").unlink()
    assert_user_error(facevae("train", "--data", root, "--out", tmp_path / "r"), "list_attr_celeba.txt is missing")


def test_corrupt_image_during_cache_build(tmp_path):
    root = make_celeba(tmp_path / "c", n=6)
    (root / "img_align_celeba" / "000002.jpg").write_bytes(b"broken")
    r = facevae("train", "--data", root, "--out", tmp_path / "r", "--set", "model.image_size=32",
                "--set", "model.widths=[8]", "--max-steps", "1")
    assert_user_error(r, "000002.jpg", "corrupt")


def test_unknown_config_key(tmp_path, fake_celeba):
    assert_user_error(facevae("train", "--data", fake_celeba, "--out", tmp_path / "r", "--set", "model.size=3"),
                      "unknown config key 'model.size'")


def test_mistyped_sampler_gets_a_suggestion(tmp_path):
    assert_user_error(facevae("sample", "--sampler", "gmn", "--out", tmp_path / "s.png"),
                      "unknown sampler 'gmn' (did you mean 'gmm'?)")
    assert not (tmp_path / "s.png").exists()


def test_unknown_option_is_a_usage_error(tmp_path):
    r = facevae("train", "--dta", tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "No such option" in r.stderr


def test_unsupported_image_size(tmp_path, fake_celeba):
    assert_user_error(facevae("train", "--data", fake_celeba, "--out", tmp_path / "r", "--set", "model.image_size=100"),
                      "unsupported image size 100")


def test_checkpoint_that_does_not_exist(tmp_path):
    assert_user_error(facevae("sample", "--ckpt", tmp_path / "nope", "--n", 4, "--out", tmp_path / "s.png"),
                      "does not exist")


def test_checkpoint_that_does_not_match(tmp_path, tiny_run):
    # weights from one model, config of another: the file is inconsistent
    from safetensors.torch import load_file, save_file

    from facevae.config import RunConfig

    tensors = load_file(str(tiny_run / "model.safetensors"))
    other = RunConfig().override(["model.latent_dim=4"])
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"config": other.to_yaml()})
    assert_user_error(facevae("sample", "--ckpt", bad, "--n", 4, "--out", tmp_path / "s.png"), "do not match")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    assert_user_error(facevae("sample", "--ckpt", junk, "--n", 4, "--out", tmp_path / "s.png"), "not a readable")


def test_train_refuses_to_overwrite_a_run(tmp_path, tiny_run, fake_celeba):
    before = (tiny_run / "checkpoint.safetensors").read_bytes()
    assert_user_error(facevae("train", "--data", fake_celeba, "--out", tiny_run), "--resume")
    assert (tiny_run / "checkpoint.safetensors").read_bytes() == before


def test_resume_with_other_model_settings(tmp_path, tiny_run, fake_celeba):
    assert_user_error(facevae("train", "--data", fake_celeba, "--out", tiny_run, "--resume",
                              "--set", "model.latent_dim=4"), "model.latent_dim")


def test_reconstruct_corrupt_and_missing_image(tmp_path, tiny_run):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    assert_user_error(facevae("reconstruct", "--ckpt", tiny_run, "--images", bad, "--out", tmp_path / "r.png"),
                      "corrupt")
    assert_user_error(facevae("reconstruct", "--ckpt", tiny_run, "--images", tmp_path / "gone.jpg",
                              "--out", tmp_path / "r.png"), "does not exist")
    assert not (tmp_path / "r.png").exists()


def test_sample_and_reconstruct_write_images(tmp_path, tiny_run):
    r = facevae("sample", "--ckpt", tiny_run, "--n", 6, "--out", tmp_path / "s.png", "--seed", 3)
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(tmp_path / "s.png"))
    assert img.shape == (2 + 2 * 34, 2 + 3 * 34, 3)  # 6 faces of 32 px in a 3-wide grid with 2 px padding
    faces = [tmp_path / f"f{i}.jpg" for i in range(3)]
    for i, f in enumerate(faces):
        write_jpeg(f, 50 + i)
    r = facevae("reconstruct", "--ckpt", tiny_run, "--images", *[x for f in faces for x in ("--images", f)][1:],
                "--out", tmp_path / "r.png", "--no-align")  # noise pictures: no face to align
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(tmp_path / "r.png")).shape == (2 + 2 * 34, 2 + 3 * 34, 3)


@pytest.mark.slow
def test_train_sample_reconstruct_on_mini_celeba(tmp_path, celeba_root):
    """The integration path a user takes, on the real mini CelebA, through the CLI."""
    run = tmp_path / "run"
    r = facevae("train", "--data", celeba_root, "--out", run, "--max-steps", 6, "--no-progress",
                "--set", "model.widths=[16,32,64,128]", "--set", "model.latent_dim=16",
                "--set", "train.batch_size=32", "--set", "train.log_every=2", "--set", "train.val_batches=1")
    assert r.returncode == 0, r.stderr
    for name in ("config.yaml", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "loss_curve.png",
                 "recon/epoch_0000.png"):
        assert (run / name).is_file(), name
    assert "trained to step 6" in r.stdout
    r = facevae("sample", "--ckpt", run, "--n", 16, "--out", tmp_path / "s.png")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "s.png").size == (2 + 4 * 66, 2 + 4 * 66)
    r = facevae("reconstruct", "--ckpt", run, "--data", celeba_root, "--split", "valid", "--n", 4,
                "--out", tmp_path / "r.png")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "r.png").size == (2 + 4 * 66, 2 + 2 * 66)
    r = facevae("train", "--data", celeba_root, "--out", run, "--max-steps", 8, "--resume", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "trained to step 8" in r.stdout
