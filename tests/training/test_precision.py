"""Mixed precision on CPU: bf16 autocast only where oneDNN runs it natively, NHWC inputs."""
from __future__ import annotations

import pytest
import torch

from facevae.errors import FacevaeError
from facevae.training import precision_policy
from facevae.training import trainer as trainer_mod
from facevae.training.precision_policy import autocast_dtype

from tests.training.test_sync_free import make_trainer

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_uses_bf16_only_where_native(monkeypatch, native):
    monkeypatch.setattr(precision_policy, "native_cpu_bf16", lambda: native)
    assert autocast_dtype("bf16", CPU) is (torch.bfloat16 if native else None)
    assert autocast_dtype("fp16", CPU) is None  # emulated on CPU: slower than fp32
    assert autocast_dtype("fp32", CPU) is None


def test_cuda_takes_the_configured_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert autocast_dtype("bf16", CUDA) is torch.bfloat16
    assert autocast_dtype("fp16", CUDA) is torch.float16
    assert autocast_dtype("fp32", CUDA) is None


@pytest.mark.parametrize("capability,expected", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                                 ((8, 0), torch.bfloat16), ((8, 6), torch.bfloat16)])
def test_gpus_before_ampere_train_bf16_configs_in_fp16(monkeypatch, capability, expected):
    """T4 (7.5) and V100 (7.0) run bf16 convolutions on a slow cuDNN path: fp16 with GradScaler there."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert autocast_dtype("bf16", CUDA) is expected
    assert autocast_dtype("fp16", CUDA) is torch.float16
    assert autocast_dtype("fp32", CUDA) is None


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(FacevaeError, match="train.precision"):
        autocast_dtype("fp8", CPU)


@pytest.mark.parametrize("native", [True, False])
def test_train_step_runs_convolutions_in_the_chosen_dtype_on_nhwc_input(tmp_path, monkeypatch, native):
    monkeypatch.setattr(precision_policy, "native_cpu_bf16", lambda: native)
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


def fp16_trainer(tmp_path, *sets):
    """The sync-free (CUDA) step under fp16 with loss scaling, forced on CPU."""
    tr = make_trainer(tmp_path, True, *sets)
    tr.autocast_dtype = torch.float16
    tr.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    return tr


@pytest.mark.parametrize("clip", ["train.grad_clip=0", "train.grad_clip=1.0"])
def test_fp16_skips_a_non_finite_loss_on_the_device_like_bf16(tmp_path, monkeypatch, clip):
    """A loss that is infinite while its gradients are finite: GradScaler alone would step on it."""
    tr = fp16_trainer(tmp_path, clip)
    x = next(iter(tr.loader.epoch(0)))
    assert tr.train_step(x) is not None and tr.scaler.get_scale() == 2.0 ** 8
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    real = trainer_mod.vae_loss

    def infinite(x, out, *, cfg, step=0):
        terms = real(x, out, cfg=cfg, step=step)
        terms.total = terms.total + float("inf")  # d(total)/d(weights) is unchanged, finite
        return terms

    monkeypatch.setattr(trainer_mod, "vae_loss", infinite)
    tr.train_step(x)
    after = tr.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (int(tr._skipped_dev), int(tr._bad_run_dev)) == (1, 1)
    monkeypatch.setattr(trainer_mod, "vae_loss", real)
    tr.train_step(x)
    assert any(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())
    assert int(tr._bad_run_dev) == 0
