"""What train says before its first step and after its last."""
from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from facevae.cli import app
from facevae.data import open_dataset
from facevae.training import precision_policy, summary
from facevae.training.run import train

from tests.conftest import tiny_config


def test_train_states_its_set_up_then_where_everything_is(fake_celeba, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = tiny_config("train.batch_size=8", "train.max_steps=2")
    train(fake_celeba, run, cfg, device="cpu", progress=False)
    first = capsys.readouterr().err
    assert "train: device cpu, precision " in first
    assert "train: images: 18 train, 6 valid (of 24)" in first  # make_celeba: every 4th image is valid
    assert "train: 2 steps per epoch of 8, 2 steps in all (1 epoch)" in first
    assert f"image cache built: {summary.cache_file(open_dataset(fake_celeba, cfg.data.val_fraction), cfg)}" in first
    assert f"run folder {run}:" in first and "model.safetensors" in first and "metrics.jsonl" in first
    assert "resumed" not in first

    train(fake_celeba, run, cfg.override(["train.max_steps=4"]), resume=True, device="cpu", progress=False)
    again = capsys.readouterr().err
    assert "image cache found:" in again and "resumed from step 2 of 4" in again


def test_a_precision_fallback_says_why(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision_policy, "native_cpu_bf16", lambda: False)
    assert precision_policy.precision_line("bf16", cpu) == "fp32 (bf16 is not native on this CPU)"
    assert precision_policy.precision_line("fp16", cpu) == "fp32 (fp16 has no fast path on cpu)"
    assert precision_policy.precision_line("fp32", cpu) == "fp32"


def test_resuming_a_finished_run_says_so_and_gives_its_last_losses(fake_celeba, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = tiny_config("train.batch_size=8", "train.max_steps=2")
    first = train(fake_celeba, run, cfg, device="cpu", progress=False)
    capsys.readouterr()
    again = train(fake_celeba, run, cfg, resume=True, device="cpu", progress=False)
    assert again.step == 2 and again.last == pytest.approx(first.last) and set(again.last) == {"total", "recon", "kl"}
    said = capsys.readouterr().err
    assert "train: the run had already finished (step 2 of 2); its last losses total " in said
    assert "raise --epochs or --max-steps" in said


def test_train_resume_of_a_finished_run_prints_the_losses(fake_celeba, tmp_path):
    """`facevae train --resume` used to end in `last losses ;` with nothing between."""
    run = tmp_path / "run"
    train(fake_celeba, run, tiny_config("train.batch_size=8", "train.max_steps=2"), device="cpu", progress=False)
    result = CliRunner().invoke(app, ["train", "--data", str(fake_celeba), "--out", str(run), "--resume",
                                      "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "trained to step 2 (0 skipped); last losses total " in result.output
    assert "last losses ;" not in result.output
