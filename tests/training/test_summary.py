"""What train says before its first step and after its last."""
from __future__ import annotations

import torch

from facevae.data import open_dataset
from facevae.training import summary
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
    monkeypatch.setattr("facevae.training.trainer.native_cpu_bf16", lambda: False)
    assert summary.precision_line("bf16", cpu) == "fp32 (bf16 is not native on this CPU)"
    assert summary.precision_line("fp16", cpu) == "fp32 (fp16 has no fast path on cpu)"
    assert summary.precision_line("fp32", cpu) == "fp32"
