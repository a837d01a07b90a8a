"""Ctrl-C and a second writer, through real `facevae train` processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facevae.modelfiles import checkpoint as ckpt
from tests.conftest import make_celeba

TINY = ["--set", "model.image_size=32", "--set", "model.widths=[8,16]", "--set", "model.latent_dim=4",
        "--set", "train.batch_size=4", "--set", "train.log_every=1", "--set", "train.val_batches=1",
        "--set", "train.grid_images=2", "--set", "data.workers=1", "--max-steps", "100000", "--no-progress"]


def start(data: Path, out: Path, *extra: str, code: str | None = None) -> subprocess.Popen:
    """`facevae train` (or, with code, a child that runs `code` first and then the CLI) in its own process."""
    argv = ["train", "--data", str(data), "--out", str(out), *TINY, *extra]
    child = (code or "") + f"\nimport sys\nsys.argv = ['facevae', *{argv!r}]\nfrom facevae.cli import main\nmain()\n"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def wait_for_rows(proc: subprocess.Popen, out: Path, rows: int = 2, timeout: float = 300) -> None:
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= rows:
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("training wrote no metrics in time")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("ctrl_c") / "celeba", n=24)


def test_second_writer_is_refused_then_ctrl_c_saves_the_step_and_exits_130(data, tmp_path):
    out = tmp_path / "run"
    first = start(data, out)
    try:
        wait_for_rows(first, out)
        second = start(data, out)
        _, err = second.communicate(timeout=300)
        assert second.returncode == 2, err
        assert f"error: another facevae process (PID {first.pid}) is writing to {out}" in err
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 130, err
    assert "Traceback" not in err
    step = int(ckpt.load_checkpoint(out)[2]["step"])
    assert f"saved step {step} to {out}; `--resume` continues" in err
    logged = [int(line.split('"step": ')[1].split(",")[0]) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert step >= 2 and max(logged) <= step  # the history ends at the saved step
    assert not (out / ".lock").exists()  # no stale lock with a dead PID left behind


def test_a_second_ctrl_c_stops_at_once(data, tmp_path):
    out = tmp_path / "run"
    # the save the first Ctrl-C starts takes a minute: only the second Ctrl-C can end it soon
    slow_save = ("import time\nimport facevae.training.persist as c\n_real = c.save_checkpoint\n"
                 "def slow(*a, **k):\n    time.sleep(60)\n    _real(*a, **k)\nc.save_checkpoint = slow\n")
    proc = start(data, out, code=slow_save)
    try:
        wait_for_rows(proc, out)
        proc.send_signal(signal.SIGINT)
        time.sleep(2)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=50)
        assert time.monotonic() - t < 20
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted again: stopping at once" in err and "saved step" not in err and "Traceback" not in err
    assert not (out / ckpt.CHECKPOINT).exists()
    assert not (out / ".lock").exists()
