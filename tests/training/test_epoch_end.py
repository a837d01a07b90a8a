"""End of epoch: validation scores the weights the run ships; pictures come from the runner's hook."""
from __future__ import annotations

import json

import torch

from facevae.data import BatchLoader, iterate_fixed, load_images, open_dataset
from facevae.losses import vae_loss
from facevae.models import build_model
from facevae.modelfiles.checkpoint import load_checkpoint, load_model
from facevae.training.run import _val_indices, train
from facevae.training.trainer import EpochEnd, Trainer
from tests.conftest import tiny_config


def _val_total(model, images, cfg, step: int) -> float:
    g = torch.Generator().manual_seed(cfg.train.seed)
    sums, n = 0.0, 0
    with torch.no_grad():
        for x in iterate_fixed(images, cfg.train.batch_size, torch.device("cpu"), cfg.train.val_batches):
            sums += float(vae_loss(x, model.eval()(x, generator=g), cfg=cfg.loss, step=step).total) * len(x)
            n += len(x)
    return sums / n


def test_validation_losses_are_those_of_the_shipped_ema_weights(fake_celeba, tmp_path):
    cfg = tiny_config("train.max_steps=3", "train.ema_decay=0.5", "train.precision=fp32", "train.lr=0.03")
    run = tmp_path / "run"
    train(fake_celeba, run, cfg, device="cpu", progress=False)
    row = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"][-1]
    assert row["val_weights"] == "ema"
    ds = open_dataset(fake_celeba)
    val = torch.from_numpy(load_images(ds, cfg, progress=False)[_val_indices(ds)])
    shipped = _val_total(load_model(run).model, val, cfg, row["step"])
    live = build_model(cfg.model)
    live.load_state_dict(load_checkpoint(run)[1])
    # the same numbers as the shipped weights give, and measurably not those of the live weights
    assert abs(row["val_total"] - shipped) < 1e-6 * shipped < abs(_val_total(live, val, cfg, row["step"]) - shipped)
    assert (run / "recon" / "epoch_0000.png").is_file() and (run / "loss_curve.png").is_file()  # the runner's hook


def test_the_trainer_draws_nothing_itself_and_hands_the_hook_the_shipped_weights(tmp_path):
    cfg = tiny_config("train.max_steps=2", "train.ema_decay=0.9")
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    seen: list[EpochEnd] = []
    trainer = Trainer(cfg, build_model(cfg.model), BatchLoader(images, 16, torch.device("cpu"), seed=0), images[:8],
                      tmp_path / "run", torch.device("cpu"), progress=False, on_epoch_end=seen.append)
    trainer.fit()
    assert [e.epoch for e in seen] == [0] and seen[0].model is trainer.ema.averaged
    assert seen[0].run_dir == tmp_path / "run" and seen[0].val_images.shape == (8, 3, 32, 32)
    assert not (tmp_path / "run" / "recon").exists() and not (tmp_path / "run" / "loss_curve.png").exists()
