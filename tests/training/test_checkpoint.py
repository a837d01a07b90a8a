import json

import pytest
import torch

from facevae.errors import FacevaeError
from facevae.modelfiles import checkpoint as ckpt
from facevae.modelfiles.checkpoint import flatten, load_model, unflatten
from facevae.training.run import train
from facevae.training.trainer import Trainer

from tests.conftest import tiny_config


def test_flatten_round_trip_keeps_types_and_int_keys():
    state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 2)}},
             "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1]}], "flag": None}
    tensors = {}
    skeleton = json.loads(json.dumps(flatten(state, tensors)))
    back = unflatten(skeleton, tensors)
    assert list(back["state"]) == [0]
    assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    assert back["param_groups"][0]["betas"] == [0.9, 0.999]
    assert back["flag"] is None


def _params(run_dir):
    _, model_state, _, _ = ckpt.load_checkpoint(run_dir)
    return model_state


@pytest.mark.parametrize("extra", [[], ["train.ema_decay=0.9", "train.grad_clip=1.0", "model.dropout=0.1"]])
def test_resume_equals_uninterrupted(fake_celeba, tmp_path, monkeypatch, extra):
    """Killed after step 2, resumed to step 4 == 4 uninterrupted steps (18 images / batch 8: 2 steps an epoch)."""
    cfg = tiny_config("train.batch_size=8", "train.schedule=cosine", "train.max_steps=4", "train.ckpt_every=2", *extra)
    train(fake_celeba, tmp_path / "full", cfg, device="cpu", progress=False)

    real_step = Trainer.train_step

    def dies_at_step_2(self, x):
        if self.step == 2:
            raise KeyboardInterrupt
        return real_step(self, x)

    monkeypatch.setattr(Trainer, "train_step", dies_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        train(fake_celeba, tmp_path / "part", cfg, device="cpu", progress=False)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert ckpt.load_checkpoint(tmp_path / "part")[2]["step"] == 2
    train(fake_celeba, tmp_path / "part", cfg, resume=True, device="cpu", progress=False)

    full, part = _params(tmp_path / "full"), _params(tmp_path / "part")
    assert full.keys() == part.keys()
    for k in full:
        torch.testing.assert_close(part[k], full[k], rtol=1e-5, atol=1e-6, msg=k)
    steps = [json.loads(l)["step"] for l in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["kind"] == "step"]
    assert steps == [1, 2, 3, 4]


def test_resume_is_not_trivially_equal(fake_celeba, tmp_path):
    """The comparison above means something: 2 steps and 4 steps give different weights."""
    cfg = tiny_config("train.batch_size=8")
    train(fake_celeba, tmp_path / "two", cfg.override(["train.max_steps=2"]), device="cpu", progress=False)
    train(fake_celeba, tmp_path / "four", cfg.override(["train.max_steps=4"]), device="cpu", progress=False)
    two, four = _params(tmp_path / "two"), _params(tmp_path / "four")
    assert any(not torch.allclose(two[k], four[k]) for k in two if two[k].is_floating_point())


def test_interrupted_write_leaves_previous_checkpoint(fake_celeba, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(fake_celeba, run, tiny_config("train.max_steps=2"), device="cpu", progress=False)
    before = (run / ckpt.CHECKPOINT).read_bytes()

    def killed(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(ckpt, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        train(fake_celeba, run, tiny_config("train.max_steps=4"), resume=True, device="cpu", progress=False)
    assert (run / ckpt.CHECKPOINT).read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    loaded = load_model(run)
    model, cfg = loaded.model, loaded.config
    assert cfg.model.latent_dim == 8


def test_nan_guard_skips_then_stops_and_keeps_checkpoint(fake_celeba, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(fake_celeba, run, tiny_config("train.max_steps=2"), device="cpu", progress=False)
    good = (run / ckpt.CHECKPOINT).read_bytes()
    from facevae import losses
    from facevae.training import trainer as trainer_mod

    real = losses.vae_loss

    def poisoned(x, out, *, cfg, step=0):
        terms = real(x, out, cfg=cfg, step=step)
        terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(trainer_mod, "vae_loss", poisoned)
    with pytest.raises(trainer_mod.TrainingDiverged, match="non-finite loss"):
        train(fake_celeba, run, tiny_config("train.max_steps=50", "train.nan_patience=3"), resume=True,
              device="cpu", progress=False)
    assert (run / ckpt.CHECKPOINT).read_bytes() == good


def test_load_model_errors(tmp_path):
    with pytest.raises(FacevaeError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacevaeError, match="holds no model.safetensors"):
        load_model(tmp_path / "empty")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(FacevaeError, match="not a readable facevae checkpoint"):
        load_model(junk)


def test_load_model_returns_one_frozen_checkpoint(fake_celeba, tmp_path):
    import dataclasses
    import hashlib

    from facevae.modelfiles.attributes import cache_paths
    from facevae.modelfiles.samplers import store_dirs
    from facevae.modelfiles.checkpoint import bundled_weights

    run = tmp_path / "run"
    train(fake_celeba, run, tiny_config("train.max_steps=2"), device="cpu", progress=False)
    c = load_model(run)
    weights = run / ckpt.WEIGHTS
    assert (c.weights, c.run_dir, c.is_bundled, c.step, c.source) == (weights, run, False, 2, str(run))
    assert c.digest == hashlib.sha1(weights.read_bytes()).hexdigest() and c.weights_id == c.digest[:12]
    assert c.config.model.latent_dim == 8 and not c.model.training
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.digest = "x"
    # one rule for "the bundled model": by default or named by its file, it is the same checkpoint
    default, named = load_model(None), load_model(bundled_weights())
    assert default.is_bundled and named.is_bundled and default.run_dir is None
    assert cache_paths(default) == cache_paths(named) and store_dirs(default) == store_dirs(named)
