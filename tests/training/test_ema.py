import torch

from facevae.config import RunConfig
from facevae.models import build_model
from facevae.training.ema import EMA


def _model():
    return build_model(RunConfig().override(["model.latent_dim=4", "model.widths=[4,8]", "model.image_size=32"]).model)


def test_ema_warms_up_then_follows_decay():
    ema = EMA(_model(), 0.999)
    assert ema.decay_at(0) == 0.1
    assert ema.decay_at(90) == 0.91
    assert ema.decay_at(100_000) == 0.999


def test_ema_averages_weights_and_batchnorm_statistics():
    model = _model()
    ema = EMA(model, 0.5)
    start = [p.clone() for p in ema.averaged.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()
    model(torch.rand(4, 3, 32, 32))  # moves BatchNorm running statistics
    ema.update(model, step=10_000)  # past warm-up: weight 0.5
    for a, s, p in zip(ema.averaged.parameters(), start, model.parameters()):
        torch.testing.assert_close(a, 0.5 * s + 0.5 * p)
    bn_ema = dict(ema.averaged.named_buffers())
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            assert not torch.equal(bn_ema[name], b) and not torch.equal(bn_ema[name], torch.zeros_like(b))
        if name.endswith("num_batches_tracked"):
            assert torch.equal(bn_ema[name], b)
