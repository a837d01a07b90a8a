"""Under torchrun even one process trains through DDP: the N-process path, checkable on one GPU (or CPU, gloo)."""
from __future__ import annotations

import socket

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from facevae.training import run
from facevae.training.launch import train_maybe_distributed

from tests.conftest import tiny_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_one_process_torchrun_job_wraps_the_model_in_ddp(fake_celeba, tmp_path, monkeypatch):
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)  # what torchrun --nproc_per_node=1 sets
    wrapped = []
    real_wrap = run._wrap
    monkeypatch.setattr(run, "_wrap", lambda *a: wrapped.append(real_wrap(*a)) or wrapped[-1])
    result = train_maybe_distributed(fake_celeba, tmp_path / "run", tiny_config("train.max_steps=2"), resume=False,
                                     device="cpu", progress=False)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.last["total"]))
    assert isinstance(wrapped[0], DistributedDataParallel)
    assert not dist.is_initialized()  # the group is torn down again
