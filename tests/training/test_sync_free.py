"""The sync-free step (the CUDA default), forced on CPU: a bad step is masked on the device.

The fused Adam that reads the device-side flag runs on CPU too, so the masking is
checked here for real; only the absence of host syncs is a GPU matter.
"""
from __future__ import annotations

import copy

import pytest
import torch

from facevae.data.loader import BatchLoader
from facevae.models import build_model
from facevae.training import trainer as trainer_mod
from facevae.training.persist import TrainingDiverged
from facevae.training.trainer import Trainer

from tests.conftest import tiny_config


def make_trainer(tmp_path, sync_free: bool, *sets: str, n_images: int = 40) -> Trainer:
    cfg = tiny_config("model.norm=batch", "train.batch_size=8", "train.ema_decay=0.5", *sets)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    images = torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    loader = BatchLoader(images, 8, torch.device("cpu"), seed=0)
    return Trainer(cfg, model, loader, images[:8], tmp_path / "run", torch.device("cpu"), progress=False,
                   sync_free=sync_free)


def snapshot(tr: Trainer) -> dict:
    return {"model": copy.deepcopy(tr.model.state_dict()), "opt": copy.deepcopy(tr.opt.state_dict()["state"]),
            "ema": copy.deepcopy(tr.ema.state_dict())}


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


@pytest.mark.slow
@pytest.mark.parametrize("sync_free", [True, False])
def test_a_non_finite_step_leaves_weights_optimizer_and_batchnorm_untouched(tmp_path, sync_free):
    tr = make_trainer(tmp_path, sync_free)
    x = next(iter(tr.loader.epoch(0)))
    tr.train_step(x)  # Adam has moments and a step count from here on
    before = snapshot(tr)
    poisoned = x.clone()
    poisoned[0, 0, 0, 0] = float("nan")  # NaN activations: the BatchNorm statistics see it too
    terms = tr.train_step(poisoned)
    after = snapshot(tr)
    assert same(before["model"], after["model"])  # weights and running statistics
    assert same(before["opt"], after["opt"])  # exp_avg, exp_avg_sq and the step count
    if sync_free:
        assert terms is not None and not torch.isfinite(terms["total"])
        assert (int(tr._skipped_dev), int(tr._bad_run_dev)) == (1, 1)
        # the EMA takes one averaging step towards the unchanged weights: still finite, close by
        assert all(torch.isfinite(v).all() for v in after["ema"].values())
    else:
        assert terms is None
        assert same(before["ema"], after["ema"])
    tr.train_step(x)
    assert not same(before["model"], snapshot(tr)["model"])
    if sync_free:
        assert (int(tr._skipped_dev), int(tr._bad_run_dev)) == (1, 0)


@pytest.mark.slow
def test_sync_free_steps_match_exact_steps(tmp_path):
    """Masking changes nothing on good steps (fused and foreach Adam agree up to rounding)."""
    runs = []
    for sync_free in (True, False):
        # no norm: a conv bias in front of BatchNorm has a zero gradient up to rounding, which Adam
        # turns into noise of the size of the learning rate
        tr = make_trainer(tmp_path / str(sync_free), sync_free, "model.norm=none")
        for x in list(tr.loader.epoch(0))[:3]:
            tr.train_step(x)
        runs.append(tr.model.state_dict())
    for k in runs[0]:
        torch.testing.assert_close(runs[0][k], runs[1][k], rtol=1e-4, atol=1e-5, msg=k)


def test_a_run_of_bad_steps_stops_at_the_next_log_point(tmp_path, monkeypatch):
    real = trainer_mod.vae_loss

    def poisoned(x, out, *, cfg, step=0):
        terms = real(x, out, cfg=cfg, step=step)
        if step >= 2:
            terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(trainer_mod, "vae_loss", poisoned)
    tr = make_trainer(tmp_path, True, "train.log_every=4", "train.nan_patience=3", "train.max_steps=50",
                      "train.ckpt_every=2", n_images=80)
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 6"):
        tr.fit()
    # steps 3, 4, ... are bad; the host reads the counters at checkpoint (every 2) and log (every 4)
    # points only: at step 4 the run is 2 long (go on, write no checkpoint), at step 6 it is 4: stop
    assert (tr.skipped, tr.bad_run) == (4, 4)
    # the checkpoint of step 2 is the last one written: none during the bad run
    from facevae.modelfiles import checkpoint as ckpt

    assert ckpt.load_checkpoint(tr.run_dir)[2]["step"] == 2
