"""The one batched-forward helper: every encode/decode/reconstruct pass over a set goes through it."""
from __future__ import annotations

import torch

from facevae.data.encode import encode_images
from facevae.metrics.recon import reconstruct_uint8
from facevae.models import build_model
from facevae.models import forward
from tests.conftest import tiny_config


def test_batches_cover_every_row_once_in_order():
    calls = []

    def fn(b):
        calls.append(len(b))
        return b * 2

    rows = torch.arange(10.0).unsqueeze(1)
    assert torch.equal(forward.batched(fn, rows, "cpu", batch_size=4), rows * 2)
    assert calls == [4, 4, 2]
    assert forward.batched(fn, rows[:0], "cpu").shape == (0, 1)


def test_encode_and_reconstruct_use_the_shared_batch_size(monkeypatch):
    model = build_model(tiny_config().model).eval()
    x8 = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    sizes = []
    real = forward.batched

    def spy(fn, rows, device, batch_size=forward.FORWARD_BATCH):
        sizes.append(batch_size)
        return real(fn, rows, device, batch_size=2)

    monkeypatch.setattr("facevae.data.encode.batched", spy)
    monkeypatch.setattr("facevae.metrics.recon.batched", spy)
    mean, logvar = encode_images(model, x8)
    whole = model.encode(x8.float() / 255)
    torch.testing.assert_close(mean, whole.mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logvar, whole.logvar, atol=1e-5, rtol=1e-5)
    assert mean.is_contiguous() and logvar.is_contiguous()
    recon = reconstruct_uint8(model, x8)
    assert recon.dtype == torch.uint8 and recon.shape == x8.shape
    assert sizes == [forward.FORWARD_BATCH] * 2  # neither caller hard-codes its own batch size
