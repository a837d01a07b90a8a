import pytest
import torch

from facevae.errors import FacevaeError
from facevae.tasks.generate import generate
from facevae.modelfiles import samplers as store
from facevae.modelfiles.checkpoint import load_model
from facevae.training.run import train

from tests.conftest import tiny_config, train_tiny


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    return train_tiny(tmp_path_factory)


def test_fitted_sampler_is_stored_beside_the_run_and_reused(run_and_data, monkeypatch):
    run, data = run_and_data
    with pytest.raises(FacevaeError, match="pass --data"):
        generate(run, n=4, sampler="gaussian", device="cpu")
    a = generate(run, n=4, sampler="gmm", components=2, data=data, device="cpu", seed=1)
    files = list((run / "samplers").glob("gmm-k2-*.safetensors"))
    assert len(files) == 1 and a.shape == (4, 3, 32, 32)

    def refit(*args, **kwargs):
        raise AssertionError("refitted although a stored fit exists")

    monkeypatch.setattr(store, "fit_sampler", refit)
    b = generate(run, n=4, sampler="gmm", components=2, device="cpu", seed=1)  # no data needed now
    torch.testing.assert_close(a, b)


def test_a_fit_on_first_use_says_what_it_is_doing(run_and_data, capsys):
    run, data = run_and_data
    generate(run, n=2, sampler="gmm", components=3, data=data, device="cpu")
    err = capsys.readouterr().err
    # make_celeba(n=40): every 4th image is in the validation split
    assert "encoding 30 training images ..." in err
    assert "fitting the gmm sampler (components=3) on 30 latents ..." in err
    assert "fitting the gmm sampler (components=3) on 30 latents: done in " in err
    generate(run, n=2, sampler="gmm", components=3, device="cpu")
    assert "fitting" not in capsys.readouterr().err  # a stored fit is silent


def test_new_weights_invalidate_the_stored_fit(run_and_data, tmp_path):
    run, data = run_and_data
    before = store.sampler_file("gmm", 2, load_model(run))
    train(data, run, tiny_config("train.max_steps=3"), resume=True, device="cpu", progress=False)
    assert store.sampler_file("gmm", 2, load_model(run)) != before


def test_temperature_zero_prior_gives_the_decoded_origin(run_and_data):
    run, _ = run_and_data
    cold = generate(run, n=3, temperature=0.0, device="cpu", seed=0)
    torch.testing.assert_close(cold[0], cold[2])
    warm = generate(run, n=3, temperature=1.0, device="cpu", seed=0)
    assert not torch.allclose(warm[0], warm[2])


def test_unknown_sampler(run_and_data):
    with pytest.raises(FacevaeError, match="choose one of: prior, gaussian, gmm"):
        generate(run_and_data[0], n=2, sampler="flow", device="cpu")


def test_store_reads_per_sampler_facts_from_the_class(run_and_data, monkeypatch):
    """A new sampler declares whether it fits latents and which option keys its fit; the store has no tables."""
    from facevae.sampling import GaussianSampler, PriorSampler, registry

    class Wide(PriorSampler):
        name = "wide"

    class Banded(GaussianSampler):
        name = "banded"
        stored_option = "jitter"

    monkeypatch.setitem(registry.SAMPLERS, "wide", Wide)
    monkeypatch.setitem(registry.SAMPLERS, "banded", Banded)
    run, _ = run_and_data
    loaded = load_model(run)
    assert isinstance(store.get_sampler(loaded, name="wide"), Wide)  # no data, no file: not fitted
    assert store.sampler_file("banded", 3, loaded).startswith("banded-k3-")
    assert store.fit_options("banded", 3) == {"jitter": 3}
    assert store.sampler_file("gaussian", 3, loaded).startswith("gaussian-") and store.fit_options("gaussian", 3) == {}


def test_sample_seed_draws_its_noise_on_the_cpu_whatever_the_device(run_and_data, monkeypatch):
    """The same seed gives the same faces on CPU and GPU: the latents come from a CPU generator."""
    import dataclasses

    import facevae.api as api

    run, _ = run_and_data
    seen = []
    real_get = store.get_sampler

    def spying_get(*args, **kwargs):
        sampler = real_get(*args, **kwargs)
        draw = sampler.sample

        def sample(n, generator=None, temperature=1.0):
            seen.append(generator.device)
            z = draw(n, generator=generator, temperature=temperature)
            return torch.zeros(z.shape)  # meta tensors hold no numbers to copy back

        sampler.sample = sample
        return sampler

    monkeypatch.setattr(api, "get_sampler", spying_get)
    loaded = load_model(run)
    # "meta" stands in for cuda: the model's device is not the CPU
    vae = api.FaceVAE(dataclasses.replace(loaded, model=loaded.model.to("meta")))
    z = vae.sample_latents(3, seed=5)
    assert seen == [torch.device("cpu")] and z.shape == (3, 8)


def test_diffusion_fit_is_stored_and_the_cli_samples_from_it(run_and_data, monkeypatch, tmp_path):
    from tests.cli.test_cli import facevae

    run, data = run_and_data
    real = store.build_sampler
    # the default diffusion fit takes minutes: a tiny one goes through the same store path
    monkeypatch.setattr(store, "build_sampler", lambda name, dim, **kw: real(
        name, dim, **kw, **({"hidden": 16, "steps": 20, "sample_steps": 5} if name == "diffusion" else {})))
    a = generate(run, n=4, sampler="diffusion", data=data, device="cpu", seed=1)
    assert [f.name for f in (run / "samplers").glob("diffusion*")] == [store.sampler_file("diffusion", 10, load_model(run))]
    monkeypatch.setattr(store, "fit_sampler", lambda *args, **kwargs: pytest.fail("refitted although a stored fit exists"))
    torch.testing.assert_close(generate(run, n=4, sampler="diffusion", device="cpu", seed=1), a)
    r = facevae("sample", "--ckpt", run, "--sampler", "diffusion", "--n", 4, "--out", tmp_path / "d.png")
    assert r.returncode == 0 and "wrote 4 faces" in r.stdout and (tmp_path / "d.png").is_file(), r.stderr
