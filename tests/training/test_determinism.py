"""train.deterministic: deterministic kernels only while training, the process-wide switches put back after."""
from __future__ import annotations

import pytest
import torch

from facevae.training import run
from facevae.training.trainer import Trainer

from tests.conftest import tiny_config


def switches() -> tuple[bool, bool, bool]:
    cudnn = torch.backends.cudnn
    return torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark


@pytest.mark.parametrize("deterministic", [True, False])
def test_training_runs_under_the_chosen_kernels(fake_celeba, tmp_path, monkeypatch, deterministic):
    seen = []
    real_fit = Trainer.fit

    def fit(self, resume=False):
        seen.append(switches())
        return real_fit(self, resume)

    monkeypatch.setattr(Trainer, "fit", fit)
    before = switches()
    cfg = tiny_config("train.max_steps=1", f"train.deterministic={str(deterministic).lower()}")
    run.train(fake_celeba, tmp_path / "run", cfg, device="cpu", progress=False)
    # deterministic: no cuDNN autotuning (it picks kernels by timing, so reruns round differently)
    assert seen == [(True, True, False)] if deterministic else seen == [(False, False, False)]
    assert switches() == before


def test_cuda_autotunes_unless_deterministic():
    cuda = torch.device("cuda")
    before = switches()
    with run.kernel_choice(False, cuda):
        assert switches() == (False, False, True)
    with run.kernel_choice(True, cuda):
        assert switches() == (True, True, False)
    assert switches() == before
