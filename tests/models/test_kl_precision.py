"""The KL is computed in float32 even when the encoder runs under reduced-precision autocast."""
from __future__ import annotations

import torch

from facevae.models import build_model

from tests.conftest import tiny_config


def test_inactive_units_kl_is_zero_or_positive_under_bf16_autocast():
    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    d = cfg.model.latent_dim
    head = model.encoder.head
    # inactive units: the posterior is N(0, exp(b)) whatever the image, b a small bias (unit 0: b = 0)
    logvar_bias = torch.tensor([0.0, 0.003, -0.003, 0.005, 0.01, -0.01])
    k = len(logvar_bias)
    with torch.no_grad():
        head.weight[:k].zero_()
        head.bias[:k].zero_()
        head.weight[d:d + k].zero_()
        head.bias[d:d + k] = logvar_bias
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, sample=False)
    kl = out.posterior.kl_per_dim()
    assert torch.equal(kl[:, 0], torch.zeros(4))
    assert (kl[:, 1:k] >= 0).all(), kl[:, :k]
    assert (kl[:, 1:k] < 1e-4).all()  # and it is the KL of N(0, ~1): tiny, not noise of size 1e-3
    assert out.posterior.mean.dtype == out.posterior.logvar.dtype == torch.float32
