"""Mixed precision on CPU: bf16 autocast only where oneDNN runs it natively, NHWC inputs."""
from __future__ import annotations

import pytest
import torch

from facevae.errors import FacevaeError
from facevae.training import trainer as trainer_mod
from facevae.training.trainer import autocast_dtype

from tests.training.test_sync_free import make_trainer

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_uses_bf16_only_where_native(monkeypatch, native):
    monkeypatch.setattr(trainer_mod, "native_cpu_bf16", lambda: native)
    assert autocast_dtype("bf16", CPU) is (torch.bfloat16 if native else None)
    assert autocast_dtype("fp16", CPU) is None  # emulated on CPU: slower than fp32
    assert autocast_dtype("fp32", CPU) is None


def test_cuda_takes_the_configured_precision():
    assert autocast_dtype("bf16", CUDA) is torch.bfloat16
    assert autocast_dtype("fp16", CUDA) is torch.float16
    assert autocast_dtype("fp32", CUDA) is None


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(FacevaeError, match="train.precision"):
        autocast_dtype("fp8", CPU)


@pytest.mark.parametrize("native", [True, False])
def test_train_step_runs_convolutions_in_the_chosen_dtype_on_nhwc_input(tmp_path, monkeypatch, native):
    monkeypatch.setattr(trainer_mod, "native_cpu_bf16", lambda: native)
    tr = make_trainer(tmp_path, False)
    seen = []
    conv = next(m for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, inp, out: seen.append((inp[0].dtype, out.dtype, inp[0].is_contiguous(
        memory_format=torch.channels_last))))
    terms = tr.train_step(next(iter(tr.loader.epoch(0))))
    assert terms is not None and torch.isfinite(terms["total"])
    expected = torch.bfloat16 if native else torch.float32
    assert seen[0][1] == expected
    assert seen[0][2], "the first convolution should see a channels_last batch"
    assert all(p.dtype == torch.float32 for p in tr.model.parameters())  # master weights stay fp32
