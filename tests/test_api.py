"""`facevae.load()` and `FaceVAE`: the bundled model and a tiny trained run, through the one object."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import facevae
from facevae.errors import FacevaeError
from facevae.modelfiles import samplers as store

from tests.conftest import REPO, train_tiny


@pytest.fixture(scope="module")
def vae():
    return facevae.load(device="cpu")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train_tiny(tmp_path_factory)


def test_the_bundled_model_describes_itself(vae):
    assert isinstance(vae, facevae.FaceVAE)
    assert (vae.image_size, vae.latent_dim, vae.device.type) == (64, 64, "cpu")
    assert len(vae.weights_id) == 12 and vae.checkpoint.is_bundled
    assert facevae.load("celeba64", device="cpu").weights_id == vae.weights_id
    assert "celeba64" in repr(vae) and vae.weights_id in repr(vae)


def test_samples_are_images_in_range_and_seeded(vae):
    a = vae.sample(4, seed=3)
    assert a.shape == (4, 3, 64, 64) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert 0 <= a.min() and a.max() <= 1
    torch.testing.assert_close(vae.sample(4, seed=3), a)
    assert not torch.equal(vae.sample(4, seed=4), a)
    # a cooler draw stays closer to the prior's centre
    hot, cold = vae.sample_latents(256, seed=0), vae.sample_latents(256, seed=0, temperature=0.5)
    torch.testing.assert_close(cold, hot * 0.5)


def test_a_stored_sampler_is_read_never_refitted(vae, monkeypatch):
    monkeypatch.setattr(store, "fit_sampler", lambda *a, **k: pytest.fail("refitted a shipped sampler"))
    fresh = facevae.load(device="cpu")
    faces = fresh.sample(3, sampler="gmm", seed=0)
    assert faces.shape == (3, 3, 64, 64)
    assert fresh.sampler("gmm") is fresh.sampler("gmm")  # cached on the object


def test_encode_takes_paths_pil_images_and_tensors_alike(vae, celeba_root):
    paths = sorted((celeba_root / "img_align_celeba").glob("1628[6-9]*.jpg"))[:2]
    from_paths = vae.encode(paths)
    assert from_paths.shape == (2, 64)
    torch.testing.assert_close(vae.encode(paths[0]), from_paths[:1])
    torch.testing.assert_close(vae.encode(Image.open(paths[1])), from_paths[1:])
    x = vae.as_images(paths)
    torch.testing.assert_close(vae.encode(x), from_paths)
    post = vae.posterior(x)
    torch.testing.assert_close(post.mean, from_paths)
    assert post.logvar.shape == (2, 64) and (post.logvar < 0).all()  # a trained encoder is surer than the prior


def test_reconstruct_is_decode_of_encode_and_close_to_the_face(vae, celeba_root):
    x = vae.as_images(sorted((celeba_root / "img_align_celeba").glob("1628[6-9]*.jpg"))[:2])
    r = vae.reconstruct(x)
    torch.testing.assert_close(r, vae.decode(vae.encode(x)))
    psnr = -10 * torch.log10((r - x).square().mean())
    assert psnr > 18  # the bundled model reconstructs valid faces at about 22 dB


def test_edit_by_keywords_or_mapping_moves_along_the_attribute(vae):
    z = vae.sample_latents(2, seed=0)
    bank = vae.attribute_bank
    step = bank.steps[bank.names.index("Smiling")]
    torch.testing.assert_close(vae.edit(z, Smiling=1.5), z + 1.5 * step)
    torch.testing.assert_close(vae.edit(z, {"smiling": 1.5, "Eyeglasses": 1}),
                               vae.edit(z, Smiling=1.5, Eyeglasses=1.0))
    assert len(vae.attributes) == 40 and "Eyeglasses" in vae.attributes


def test_unknown_attribute_and_nan_strength_are_one_line_errors(vae):
    z = vae.sample_latents(1, seed=0)
    with pytest.raises(FacevaeError, match=r"did you mean 'Smiling'"):
        vae.edit(z, Smilng=1)
    with pytest.raises(FacevaeError, match="finite"):
        vae.edit(z, Smiling=float("nan"))


def test_interpolate_joins_the_two_codes(vae):
    a, b = vae.sample_latents(2, seed=1)
    path = vae.interpolate(a, b, steps=5)
    assert path.shape == (5, 64)
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    assert vae.interpolate(a[None], b[None], steps=3, mode="linear").shape == (3, 1, 64)
    with pytest.raises(FacevaeError, match="finite"):
        vae.interpolate(a, torch.full_like(b, float("nan")))


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 3, 32, 32), r"shape \(N, 3, 64, 64\)"),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "float tensors"),
    (torch.full((1, 3, 64, 64), 2.0), r"in \[0, 1\]"),
    (torch.full((1, 3, 64, 64), float("nan")), "finite"),
])
def test_images_of_the_wrong_shape_range_or_dtype_are_refused(vae, bad, message):
    with pytest.raises(FacevaeError, match=message):
        vae.encode(bad)


def test_latents_and_counts_are_checked(vae):
    with pytest.raises(FacevaeError, match=r"shape \(N, 64\)"):
        vae.decode(torch.zeros(2, 8))
    with pytest.raises(FacevaeError, match="finite"):
        vae.decode(torch.full((1, 64), float("inf")))
    with pytest.raises(FacevaeError, match="at least 1"):
        vae.sample(0)
    with pytest.raises(FacevaeError, match="temperature"):
        vae.sample(2, temperature=float("nan"))
    with pytest.raises(FacevaeError, match=r"unknown sampler 'gmn' \(did you mean 'gmm'\?\)"):
        vae.sample(2, sampler="gmn")


def test_a_photo_that_is_not_an_image_is_refused(vae, tmp_path):
    fake = tmp_path / "me.jpg"
    fake.write_text("not a picture")
    with pytest.raises(FacevaeError, match="corrupt or not an image"):
        vae.encode(fake)
    with pytest.raises(FacevaeError, match="does not exist"):
        vae.encode(tmp_path / "nobody.jpg")


def test_sources_a_run_a_file_and_an_exported_folder_load_the_same_weights(tiny_run, tmp_path):
    run, data = tiny_run
    by_run = facevae.load(run, device="cpu")
    by_file = facevae.load(run / "model.safetensors", device="cpu")
    assert by_run.weights_id == by_file.weights_id and by_run.image_size == 32
    exported = by_run.save_pretrained(tmp_path / "hub")
    again = facevae.load(exported, device="cpu")
    z = by_run.sample_latents(2, seed=0)
    torch.testing.assert_close(again.decode(z), by_run.decode(z))


def test_a_missing_fit_is_made_once_on_data_and_said(tiny_run, capsys):
    run, data = tiny_run
    with pytest.raises(FacevaeError, match="pass --data"):
        facevae.load(run, device="cpu").sample(2, sampler="gaussian")
    vae = facevae.load(run, device="cpu", data=data)
    vae.sample(2, sampler="gaussian", seed=0)
    said = capsys.readouterr().err
    assert "fitting the gaussian sampler" in said and "done in" in said
    vae.sample(2, sampler="gaussian", seed=0)
    assert "fitting" not in capsys.readouterr().err  # the fit is kept on the object and on disk


@pytest.mark.parametrize("source, message", [
    ("celeba256", "bundled name"),
    ("./no/such/run", "does not exist"),
])
def test_unknown_sources_are_one_line_errors(source, message):
    with pytest.raises(FacevaeError, match=message):
        facevae.load(source, device="cpu")


def test_a_hub_id_while_offline_is_one_clear_error(monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FacevaeError, match=r"Hugging Face Hub failed \(HF_HUB_OFFLINE is set\)"):
        facevae.load("someone/facevae-model", device="cpu")


def test_a_corrupt_weights_file_is_one_line_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(FacevaeError, match="not a readable facevae checkpoint"):
        facevae.load(bad, device="cpu")
    assert bad.read_bytes() == b"\x00" * 64  # nothing overwritten


def test_save_grid_and_to_pil(vae, tmp_path):
    faces = vae.sample(3, seed=0)
    path = facevae.save_grid([faces[:2], faces[2:]], tmp_path / "g.png", nrow=3)
    assert Image.open(path).size == (3 * 66 + 2, 66 + 2)
    one = facevae.to_pil(faces[0])
    assert one.size == (64, 64) and one.mode == "RGB"
    assert np.array_equal(np.asarray(one), (faces[0].permute(1, 2, 0) * 255).round().byte().numpy())
    assert len(facevae.to_pil(faces)) == 3


def test_inference_never_imports_the_trainer():
    code = ("import sys, facevae; v = facevae.load(device='cpu'); v.sample(2, sampler='gmm', seed=0); "
            "v.edit(v.encode(v.sample(1, seed=0)), Smiling=1); "
            "print(sorted(m for m in sys.modules if m.startswith('facevae.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_torch_hub_loads_the_bundled_model_from_a_clone():
    hub = torch.hub.load(str(REPO), "celeba64", source="local", device="cpu")
    assert isinstance(hub, facevae.FaceVAE) and hub.checkpoint.is_bundled


def test_a_code_in_is_a_code_out_and_the_ends_must_match(vae):
    z = vae.sample_latents(1, seed=0)[0]
    smiling = vae.edit(z, Smiling=1)
    assert smiling.shape == (64,)
    assert vae.interpolate(z, smiling, steps=4).shape == (4, 64)
    assert vae.decode(vae.interpolate(z, smiling, steps=4)).shape == (4, 3, 64, 64)
    with pytest.raises(FacevaeError, match="same shape"):
        vae.interpolate(z, vae.sample_latents(2, seed=0))


def test_lists_of_tensors_are_images_and_other_things_are_refused(vae):
    x = vae.sample(2, seed=0)
    torch.testing.assert_close(vae.encode([x[:1], x[1:]]), vae.encode(x))
    with pytest.raises(FacevaeError, match="cannot read a ndarray"):
        vae.encode([np.zeros((64, 64, 3))])


def test_tasks_never_change_the_object_they_are_given(tiny_run):
    from facevae.tasks.generate import as_model

    run, data = tiny_run
    vae = facevae.load(run, device="cpu")
    view = as_model(vae, data=data)
    assert view.data == data and vae.data is None and view.checkpoint is vae.checkpoint
