"""A run that cannot lie: non-finite state is never saved, one writer per folder, kills keep the history whole."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from facevae.errors import FacevaeError
from facevae.modelfiles import checkpoint as ckpt
from facevae.training import persist
from facevae.training.run import train
from facevae.training import runlock
from facevae.training.runlock import run_lock
from facevae.training.trainer import Trainer
from facevae.training.persist import TrainingDiverged
from tests.conftest import make_celeba, tiny_config

# 18 training images in batches of 4: 4 steps an epoch
FAST = ("train.batch_size=4", "train.ckpt_every=2")


class Killed(BaseException):
    """Stands in for SIGKILL at an exact point: nothing after it runs (but `finally` blocks do)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("safety") / "celeba", n=24)


def run(data, out, *extra, **kw):
    return train(data, out, tiny_config(*FAST, *extra), device="cpu", progress=False, **kw)


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def kill_after_call(monkeypatch, owner, name: str, when=lambda *a, **k: True, before: bool = False):
    """Make owner.name raise Killed (after the real call, or before it) the first time `when` holds."""
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            monkeypatch.setattr(owner, name, real)
            if before:
                raise Killed
            real(*args, **kwargs)
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


# ---- item 1: divergence with a finite loss ------------------------------------------------

@pytest.mark.parametrize("extra,bad", [
    (["train.lr=1e4"], "running_var"),  # BatchNorm statistics blow up while the loss stays finite
    (["loss.recon=mse", "loss.sigma=5e-18"], "exp_avg_sq"),  # Adam's second moments overflow
])
def test_non_finite_state_is_never_saved(data, tmp_path, extra, bad):
    with pytest.raises(TrainingDiverged, match=rf"at step \d+ \S*{bad} is not finite") as e:
        run(data, tmp_path / "r", "train.epochs=2", *extra)
    assert "there is no earlier checkpoint" in str(e.value) and "intact" not in str(e.value)
    assert not (tmp_path / "r" / ckpt.CHECKPOINT).exists()


def test_a_finite_checkpoint_is_kept_and_named_when_the_run_diverges(data, tmp_path):
    out = tmp_path / "r"
    run(data, out, "train.max_steps=2")
    before = (out / ckpt.CHECKPOINT).read_bytes(), (out / ckpt.WEIGHTS).read_bytes()
    with pytest.raises(TrainingDiverged, match=r"the last good checkpoint \(step 2\) in .* is intact"):
        run(data, out, "train.max_steps=8", "train.lr=1e4", resume=True)
    assert ((out / ckpt.CHECKPOINT).read_bytes(), (out / ckpt.WEIGHTS).read_bytes()) == before


def test_the_nan_patience_stop_says_intact_only_of_a_finite_checkpoint(data, tmp_path):
    out = tmp_path / "r"
    run(data, out, "train.max_steps=2")
    cfg, model_state, state, _ = ckpt.load_checkpoint(out)
    broken = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in model_state.items()}
    ckpt.save_checkpoint(out, cfg, broken, state)  # as an older facevae could have written it
    with pytest.raises(TrainingDiverged, match="2 steps in a row.*is not finite either") as e:
        run(data, out, "train.max_steps=8", "train.nan_patience=2", resume=True)
    assert "intact" not in str(e.value)


def test_loading_non_finite_weights_is_an_error(data, tmp_path):
    out = tmp_path / "r"
    run(data, out, "train.max_steps=2")
    loaded = ckpt.load_model(out)
    cfg, state = loaded.config, loaded.model.state_dict()
    state["decoder.to_rgb.bias"] = torch.full_like(state["decoder.to_rgb.bias"], float("inf"))
    ckpt.save_weights(out / ckpt.WEIGHTS, cfg, state)
    with pytest.raises(FacevaeError, match=r"not finite \(decoder.to_rgb.bias holds NaN or inf\)"):
        ckpt.load_model(out)


def test_first_nonfinite_names_the_tensor():
    named = {"a": torch.ones(3), "steps": torch.arange(3), "b": torch.tensor([1.0, float("-inf")])}
    assert ckpt.first_nonfinite(named) == "b"
    assert ckpt.first_nonfinite({"a": torch.ones(2)}) is None


# ---- item 2: one writer per run folder ---------------------------------------------------

def test_a_second_writer_is_refused_naming_the_holder(data, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    with run_lock(out):
        with pytest.raises(FacevaeError, match=f"another facevae process \\(PID {os.getpid()}\\) is writing"):
            run(data, out, "train.max_steps=1")
    assert not (out / "metrics.jsonl").exists()
    run(data, out, "train.max_steps=1")  # released: the next writer gets in


def test_the_lock_file_goes_with_its_holder_on_exit_error_and_ctrl_c(data, tmp_path, monkeypatch):
    """A finished run folder holds no .lock with a dead PID in it, however the writer left."""
    out = tmp_path / "r"
    run(data, out, "train.max_steps=1")
    assert not (out / ".lock").exists()  # a clean exit
    with pytest.raises(FacevaeError, match="already holds a run"):
        run(data, out, "train.max_steps=1")
    assert not (out / ".lock").exists()  # an error under the lock

    def ctrl_c(self, x):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_step", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run(data, out, "train.max_steps=2", resume=True)
    assert not (out / ".lock").exists()


def test_a_writer_that_opened_the_lock_file_as_its_holder_removed_it_takes_the_new_one(tmp_path, monkeypatch):
    """Opened, then removed by the leaving holder before our flock: that nameless file must not count as the lock."""
    out = tmp_path / "r"
    out.mkdir()
    real_open, removed = os.open, []

    def open_as_the_holder_leaves(path, *args):
        fd = real_open(path, *args)
        if not removed:
            removed.append(path)
            os.unlink(path)  # the previous holder, leaving, removes the file we just opened
        return fd

    monkeypatch.setattr(runlock.os, "open", open_as_the_holder_leaves)
    with run_lock(out):
        monkeypatch.undo()
        assert removed and (out / ".lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(FacevaeError, match="another facevae process"):
            with run_lock(out):
                pass
    assert not (out / ".lock").exists()


def test_a_fresh_start_into_a_run_needs_resume_or_overwrite(data, tmp_path):
    out = tmp_path / "r"
    run(data, out, "train.max_steps=2")
    with pytest.raises(FacevaeError, match="already holds a run: pass --resume to continue it, --overwrite"):
        run(data, out, "train.max_steps=2")
    assert [r["step"] for r in rows(out) if r["kind"] == "step"] == [1, 2]
    run(data, out, "train.max_steps=3", overwrite=True)
    assert [r["step"] for r in rows(out) if r["kind"] == "step"] == [1, 2, 3]  # one run, not two mixed


# ---- item 4: temp files ------------------------------------------------------------------

def test_start_and_resume_remove_the_runs_own_temp_files(data, tmp_path):
    out = tmp_path / "r"
    run(data, out, "train.max_steps=2")
    left = [out / ".checkpoint.safetensors.0123456789ab.tmp", out / "recon" / ".epoch_0000.png.ba9876543210.tmp"]
    mine = out / "notes.tmp"  # not an atomic write's temp name: not ours to delete
    for p in (*left, mine):
        p.write_bytes(b"x" * 100)
    run(data, out, "train.max_steps=3", resume=True)
    assert not any(p.exists() for p in left) and mine.exists()


# ---- item 5: metrics history after injected kills ----------------------------------------

def reference_rows(data, tmp_path, *extra) -> list[tuple]:
    out = tmp_path / "reference"
    run(data, out, *extra)
    return [(r["kind"], r["step"]) for r in rows(out)]


def test_kill_before_the_first_checkpoint_then_resume_does_not_duplicate_rows(data, tmp_path, monkeypatch):
    extra = ("train.epochs=2", "train.ckpt_every=1000")
    out = tmp_path / "r"
    kill_after_call(monkeypatch, persist, "save_checkpoint", before=True)
    with pytest.raises(Killed):
        run(data, out, *extra)
    assert rows(out) and not (out / ckpt.CHECKPOINT).exists()
    run(data, out, *extra, resume=True)
    assert [(r["kind"], r["step"]) for r in rows(out)] == reference_rows(data, tmp_path, *extra)


def test_kill_right_after_the_epoch_checkpoint_keeps_the_epoch_row(data, tmp_path, monkeypatch):
    extra = ("train.epochs=2",)
    out = tmp_path / "r"
    # the end of epoch 0 is step 4, also a ckpt_every step: the last write of that step is the epoch's
    kill_after_call(monkeypatch, persist, "save_checkpoint", when=lambda run_dir, cfg, m, state, *a: state["step"] == 4)
    with pytest.raises(Killed):
        run(data, out, *extra)
    run(data, out, *extra, resume=True)
    assert [(r["kind"], r["step"]) for r in rows(out)] == reference_rows(data, tmp_path, *extra)
    assert (out / "recon" / "epoch_0000.png").is_file()


def test_kill_during_the_resume_trim_keeps_every_row(data, tmp_path, monkeypatch):
    out = tmp_path / "r"
    run(data, out, "train.max_steps=2")
    history = (out / "metrics.jsonl").read_text()
    real = Path.write_text

    def half_then_kill(self, text, *a, **k):  # the rewrite dies halfway through
        real(self, text[: len(text) // 2], *a, **k)
        raise Killed

    monkeypatch.setattr(Path, "write_text", half_then_kill)
    with pytest.raises(Killed):
        run(data, out, "train.max_steps=3", resume=True)
    monkeypatch.undo()
    assert (out / "metrics.jsonl").read_text() == history


def test_full_disk_during_a_checkpoint_is_a_clean_error_keeping_the_previous_one(data, tmp_path, monkeypatch):
    import errno

    out = tmp_path / "r"
    run(data, out, "train.max_steps=2")
    before = (out / ckpt.CHECKPOINT).read_bytes()

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(FacevaeError, match="No space left on device.*untouched"):
        run(data, out, "train.max_steps=4", resume=True)
    assert (out / ckpt.CHECKPOINT).read_bytes() == before
    assert not list(out.glob(".*.tmp"))
