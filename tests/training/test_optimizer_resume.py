"""Resume with the CUDA defaults (fused Adam, channels_last weights), checked on CPU where fused Adam runs too.

Fused Adam needs weights, grads and moments with identical strides; on CPU it does
not check and silently drifts, so exact equality with an uninterrupted run shows it.
"""
from __future__ import annotations

import pytest
import torch

from facevae.data.loader import BatchLoader
from facevae.models import build_model
from facevae.training.trainer import Trainer

from tests.conftest import tiny_config


def make_trainer(run_dir, *, fused: bool, max_steps: int) -> Trainer:
    cfg = tiny_config("train.batch_size=8", f"train.max_steps={max_steps}", "train.ckpt_every=2")
    torch.manual_seed(0)
    model = build_model(cfg.model).to(memory_format=torch.channels_last)  # as training.run does
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    loader = BatchLoader(images, 8, torch.device("cpu"), seed=0)
    # sync_free=True is the CUDA path: fused Adam with the device-side skip flag
    return Trainer(cfg, model, loader, images[:8], run_dir, torch.device("cpu"), progress=False, sync_free=fused)


def assert_state_in_parameter_layout(tr: Trainer) -> None:
    conv = [p for p in tr.model.parameters() if p.dim() == 4]
    assert conv and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    for p in tr.model.parameters():
        state = tr.opt.state[p]
        for key in ("exp_avg", "exp_avg_sq"):
            assert state[key].stride() == p.stride(), key


def test_fused_channels_last_resume_equals_four_steps_exactly(tmp_path):
    full = make_trainer(tmp_path / "full", fused=True, max_steps=4)
    full.fit()
    make_trainer(tmp_path / "part", fused=True, max_steps=2).fit()
    resumed = make_trainer(tmp_path / "part", fused=True, max_steps=4)
    resumed.restore()
    assert_state_in_parameter_layout(resumed)
    resumed.fit(resume=True)
    assert resumed.step == full.step == 4
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("saved_fused,resumed_fused", [(False, True), (True, False)])
def test_the_current_runs_optimizer_flags_win_over_the_saved_ones(tmp_path, saved_fused, resumed_fused):
    """A checkpoint from CPU (non-fused) resumed on CUDA (fused), and the reverse."""
    make_trainer(tmp_path, fused=saved_fused, max_steps=2).fit()
    tr = make_trainer(tmp_path, fused=resumed_fused, max_steps=4)
    tr.fit(resume=True)  # the fused path passes found_inf, which non-fused Adam rejects
    assert tr.step == 4
    for group in tr.opt.param_groups:
        assert bool(group["fused"]) is resumed_fused
    assert_state_in_parameter_layout(tr)
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
