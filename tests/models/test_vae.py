import pytest
import torch

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.models import DiagonalGaussian, build_model


@pytest.mark.parametrize("sets,size", [
    ([], 64),
    (["model.kind=ae"], 64),
    (["model.block=resnet", "model.widths=[16,32,64]", "model.norm=group", "model.activation=silu"], 64),
    (["model.image_size=128", "model.widths=[8,16,32,64,128]"], 128),
    (["model.dropout=0.1", "model.norm=none", "model.learned_sigma=true", "loss.recon=mse"], 64),
])
def test_output_shapes(sets, size):
    cfg = RunConfig().override(["model.latent_dim=16", *sets])
    model = build_model(cfg.model)
    x = torch.rand(3, 3, size, size)
    out = model(x)
    assert out.logits.shape == (3, 3, size, size)
    assert out.recon.min() >= 0 and out.recon.max() <= 1
    assert out.z.shape == (3, 16)
    assert out.posterior.mean.shape == (3, 16)
    assert model.decode(torch.randn(5, 16)).shape == (5, 3, size, size)
    assert (out.log_sigma is not None) == cfg.model.learned_sigma


def test_ae_is_deterministic_and_has_no_kl():
    model = build_model(RunConfig().override(["model.kind=ae", "model.latent_dim=8"]).model).eval()
    x = torch.rand(2, 3, 64, 64)
    a, b = model(x), model(x)
    assert torch.equal(a.z, b.z)
    assert torch.equal(a.z, a.posterior.mean)
    assert a.posterior.kl().abs().max() == 0


def test_vae_samples_differ_and_carry_gradients():
    model = build_model(RunConfig().override(["model.latent_dim=8"]).model)
    x = torch.rand(2, 3, 64, 64)
    a, b = model(x), model(x)
    assert not torch.equal(a.z, b.z)
    a.z.sum().backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0


def test_reparameterisation_matches_mean_and_std():
    post = DiagonalGaussian(torch.full((20000, 2), 1.5), torch.log(torch.full((20000, 2), 0.25)))
    z = post.sample(torch.Generator().manual_seed(0))
    assert z.mean().item() == pytest.approx(1.5, abs=0.02)
    assert z.std().item() == pytest.approx(0.5, abs=0.02)


def test_unknown_names_are_user_errors():
    with pytest.raises(FacevaeError, match="unknown model.kind"):
        build_model(RunConfig().override(["model.kind=gan"]).model)
    with pytest.raises(FacevaeError, match="unknown model.norm .layer.; choose one of: batch, group, none"):
        build_model(RunConfig().override(["model.norm=layer"]).model)
