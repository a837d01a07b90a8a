"""`facevae finetune-decoder` and `--decoder` from the shell: a sharp run, then every command draws with it."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.cli.test_cli import assert_user_error, facevae
from tests.conftest import train_tiny


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny(tmp_path_factory, 24)


def test_finetune_then_sample_with_either_decoder(run_and_data, tmp_path):
    run, data = run_and_data
    sharp = tmp_path / "sharp"
    r = facevae("finetune-decoder", "--ckpt", run, "--data", data, "--out", sharp, "--minutes", 5, "--max-steps", 2,
                "--set", "sharp.adv_weight=0.5", "--set", "sharp.disc_widths=[8]", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "fine-tuned the decoder for 2 steps" in r.stdout and (sharp / "sharp_decoder.safetensors").is_file()
    for decoder in ("sharp", "likelihood"):
        out = tmp_path / f"{decoder}.png"
        r = facevae("sample", "--ckpt", sharp, "--n", 4, "--decoder", decoder, "--out", out)
        assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "sharp.png").tobytes() != Image.open(tmp_path / "likelihood.png").tobytes()
    again = facevae("finetune-decoder", "--ckpt", run, "--data", data, "--out", sharp, "--minutes", 5)
    assert_user_error(again, "--resume continues it")


def test_decoder_errors_are_one_line(run_and_data, tmp_path):
    run, _ = run_and_data
    assert_user_error(facevae("sample", "--ckpt", run, "--decoder", "sharp", "--out", tmp_path / "a.png"),
                      "has no sharp decoder")
    assert_user_error(facevae("sample", "--ckpt", run, "--decoder", "crisp", "--out", tmp_path / "a.png"),
                      "unknown decoder 'crisp'")
    assert_user_error(facevae("finetune-decoder", "--ckpt", run, "--data", run, "--out", tmp_path / "s",
                              "--minutes", 1, "--set", "sharp.adv_loss=wgan"), "unknown sharp.adv_loss 'wgan'")
    assert not (tmp_path / "a.png").exists()
