"""The web page's handlers, upload checks and start-up, without a browser.

Most tests use an untrained tiny model with made-up attribute directions: the
handlers' contract (sizes, state, what changes what) does not depend on training.
"""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facevae.errors import FacevaeError
from facevae.models import build_model
from facevae.models.posterior import DiagonalGaussian
from facevae.modelfiles.checkpoint import load_model, save_weights
from facevae.web import upload as upload_mod
from facevae.api import FaceVAE
from facevae.sampling.registry import SAMPLERS as SAMPLER_NAMES
from facevae.web.explorer import Explorer, active_dimensions, load_attributes, load_samplers
from facevae.web.handlers import Handlers
from facevae.web.upload import MAX_UPLOAD_BYTES, read_upload

from tests.conftest import tiny_config

NAMES = ["Smiling", "Male", "Eyeglasses"]
SIZE, LATENT = 32, 8


def _png(size=(178, 218), color=(200, 120, 90), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def explorer() -> Explorer:
    torch.manual_seed(0)
    cfg = tiny_config()
    model = build_model(cfg.model).eval()
    steps = torch.randn(len(NAMES), cfg.model.latent_dim, generator=torch.Generator().manual_seed(1)) * 2
    return Explorer(FaceVAE.from_model(model, cfg), list(NAMES), steps)


@pytest.fixture
def handlers(explorer, tmp_path) -> Handlers:
    return Handlers(explorer, n_faces=6, gif_dir=tmp_path, align=False)  # the test photos hold no face


@pytest.fixture
def started(handlers):
    return handlers.start("prior", 1.0, 0, 5, "slerp")


def _zeros(h: Handlers, **values: float) -> list[float]:
    out = [0.0] * h.ex.n_sliders
    for name, v in values.items():
        out[h.ex.attr_names.index(name)] = v
    return out


def _is_face(img, size=SIZE) -> bool:
    return isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (size, size, 3)


# ----------------------------------------------------------------------------- uploads

def test_non_image_bytes_are_rejected_whatever_the_name():
    with pytest.raises(FacevaeError, match="not an image"):
        read_upload(b"this is a text file that calls itself face.png\n" * 20)


def test_oversize_upload_is_rejected_before_decoding():
    big = _png() + b"\0" * MAX_UPLOAD_BYTES  # a real PNG header, but over the limit
    with pytest.raises(FacevaeError, match="over the 10 MB limit"):
        read_upload(big)


def test_empty_upload_is_rejected():
    with pytest.raises(FacevaeError, match="empty"):
        read_upload(b"")


def test_truncated_image_is_rejected():
    data = _png(color=(10, 20, 30))
    with pytest.raises(FacevaeError, match="image"):
        read_upload(data[: len(data) // 2])


def test_huge_pixel_count_is_rejected(monkeypatch):
    monkeypatch.setattr(upload_mod, "MAX_UPLOAD_PIXELS", 100 * 100)
    with pytest.raises(FacevaeError, match="megapixels"):
        read_upload(_png(size=(101, 100)))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_real_images_are_read_as_rgb(fmt):
    img = read_upload(_png(size=(60, 80), fmt=fmt))
    assert img.mode == "RGB" and img.size == (60, 80)


def test_upload_handler_crops_encodes_and_chooses_the_face(handlers, started):
    state = started[1]
    notes, seen, recon, new_state, chosen, edited, *zeros = handlers.upload(_png(), state)
    assert notes == ""  # a CelebA-sized portrait needs no warning
    assert all(_is_face(x) for x in (seen, recon, chosen, edited))
    # a flat-colour photo stays that colour after the crop and resize
    assert np.abs(seen.astype(int) - np.array([200, 120, 90])).max() <= 1
    assert zeros == [0.0] * handlers.ex.n_sliders
    assert not torch.equal(new_state["base"], state["base"])
    np.testing.assert_array_equal(edited, handlers.edit(new_state, *_zeros(handlers)))


@pytest.mark.parametrize("size, warned", [((30, 40), "blurred"), ((640, 360), "landscape"), ((300, 900), "tall")])
def test_badly_suited_photos_are_taken_with_a_warning(handlers, started, size, warned):
    notes, seen, *_ = handlers.upload(_png(size=size), started[1])
    assert warned in notes and _is_face(seen)  # warned, not refused


def test_an_example_photo_is_taken_like_an_upload(explorer, tmp_path, started):
    from facevae.web.handlers import example_photos
    from tests.conftest import make_celeba

    photos = example_photos(make_celeba(tmp_path / "celeba", n=12), n=2)
    h = Handlers(explorer, n_faces=6, gif_dir=tmp_path / "gifs", examples=photos, align=False)
    taken = h.example(started[1], 1)
    np.testing.assert_array_equal(taken[1], h.upload(photos[1], started[1])[1])
    assert len(photos) == 2 and read_upload(photos[0]).size == (178, 218)
    with pytest.raises(FacevaeError, match="no example photo number 2"):
        h.example(started[1], 2)


def test_upload_handler_rejects_text_and_keeps_the_state(handlers, started):
    state = started[1]
    with pytest.raises(FacevaeError, match="not an image"):
        handlers.upload(b"hello, I am not a face", state)
    assert torch.equal(state["base"], started[1]["base"])  # nothing was changed in place


# ----------------------------------------------------------------------------- handlers

def test_start_returns_right_sized_images(handlers, started):
    faces, state, chosen, edited, *rest = started
    sliders, (end_a, end_b, strip, gif) = rest[:-4], rest[-4:]
    assert len(faces) == 6 and all(_is_face(f) for f in faces)
    assert all(_is_face(x) for x in (chosen, edited, end_a, end_b))
    assert sliders == [0.0] * (len(NAMES) + LATENT)
    assert strip.shape == (SIZE + 4, 5 * (SIZE + 2) + 2, 3)
    np.testing.assert_array_equal(chosen, faces[0])
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 2 * 5 - 2  # there and back


def _drawn(h: Handlers, z: torch.Tensor) -> np.ndarray:
    """The face the model itself decodes from code `z`, as the page shows it (uint8 H x W x 3)."""
    with torch.no_grad():
        x = h.ex.vae.model.decode(z[None].float())[0]
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_moving_a_slider_changes_only_the_edited_face(handlers, started):
    state, chosen = started[1], started[2]
    same = handlers.edit(state, *_zeros(handlers))
    smiling = handlers.edit(state, *_zeros(handlers, Smiling=2.0))
    np.testing.assert_array_equal(same, chosen)
    assert _is_face(smiling)
    # the face two Smiling steps from the chosen code (one 8-bit level of float rounding allowed) ...
    expected = _drawn(handlers, state["base"] + 2.0 * handlers.ex.attr_steps[NAMES.index("Smiling")])
    assert _max_diff(smiling, expected) <= 1
    # ... which the chosen face, another attribute or the other direction would not pass for
    for wrong in (chosen, handlers.edit(state, *_zeros(handlers, Male=2.0)),
                  handlers.edit(state, *_zeros(handlers, Smiling=-2.0))):
        assert _max_diff(wrong, expected) > 1


def test_latent_dimension_slider_changes_the_face(handlers, started):
    values = _zeros(handlers)
    values[len(NAMES)] = 2.5  # the most active dimension
    moved = handlers.edit(started[1], *values)
    assert np.abs(moved.astype(int) - started[2].astype(int)).sum() > 0


def test_new_faces_moves_to_the_next_seed_and_changes_the_grid(handlers, started):
    seed, faces, state = handlers.new_faces("prior", 1.0, 0, started[1])
    assert seed == 1 and len(faces) == 6
    assert not np.array_equal(faces[0], started[0][0])
    again, _ = handlers.draw("prior", 1.0, 1, None)
    np.testing.assert_array_equal(again[0], faces[0])  # a seed draws the same grid again


def test_seeds_beyond_the_box_are_capped_not_aliased(handlers):
    from facevae.web.handlers import MAX_SEED

    capped, _ = handlers.draw("prior", 1.0, MAX_SEED + 5, None)
    np.testing.assert_array_equal(capped[0], handlers.draw("prior", 1.0, MAX_SEED, None)[0][0])
    assert not np.array_equal(capped[0], handlers.draw("prior", 1.0, 4, None)[0][0])
    assert handlers.new_faces("prior", 1.0, MAX_SEED, None)[0] == 0  # "New faces" wraps round at the cap


@pytest.mark.slow  # importing Gradio takes seconds
def test_sliders_clamp_out_of_range_values_instead_of_refusing_them():
    gr = pytest.importorskip("gradio")
    from facevae.web.page import _slider

    s = _slider(gr, -3.0, 3.0, value=0.0, step=0.1)
    assert s.preprocess(7.0) == 3.0 and s.preprocess(-9.0) == -3.0 and s.preprocess(1.5) == 1.5


def test_temperature_scales_the_draw(explorer):
    z1 = explorer.sample("prior", 4, 3, 1.0)
    z_half = explorer.sample("prior", 4, 3, 0.5)
    torch.testing.assert_close(z_half, z1 * 0.5)
    with pytest.raises(FacevaeError, match="temperature"):
        explorer.sample("prior", 4, 3, 0.0)
    with pytest.raises(FacevaeError, match="not available"):
        explorer.sample("gmm", 4, 3, 1.0)


def test_fitted_sampler_draws_at_the_asked_temperature(explorer):
    from facevae.sampling import build_sampler

    g = torch.Generator().manual_seed(0)
    fitted = build_sampler("gaussian", LATENT).fit(torch.randn(500, LATENT, generator=g) * 2 + 3)
    ex = Explorer(explorer.vae, samplers={"prior": explorer.samplers["prior"], "gaussian": fitted},
                  dims=explorer.dims, dim_scale=explorer.dim_scale)
    hot, cold = ex.sample("gaussian", 64, 5, 1.0), ex.sample("gaussian", 64, 5, 0.5)
    # same seed, same noise: the colder draw is the mean plus half the noise, row for row
    offset = cold - 0.5 * hot
    torch.testing.assert_close(offset, offset[:1].expand_as(offset), atol=1e-4, rtol=0)
    torch.testing.assert_close(ex.sample("gaussian", 64, 5, 1.0), hot)  # the shared sampler keeps no temperature


def test_diffusion_sampler_is_offered_and_draws_at_the_asked_temperature(explorer):
    from facevae.sampling import build_sampler

    assert "diffusion" in SAMPLER_NAMES
    g = torch.Generator().manual_seed(0)
    fitted = build_sampler("diffusion", LATENT, hidden=16, steps=20, sample_steps=5).fit(
        torch.randn(200, LATENT, generator=g))
    ex = Explorer(explorer.vae, samplers={"prior": explorer.samplers["prior"], "diffusion": fitted},
                  dims=explorer.dims, dim_scale=explorer.dim_scale)
    cold = ex.sample("diffusion", 8, 5, 0.5)
    torch.testing.assert_close(cold, fitted.sample(8, torch.Generator().manual_seed(5), temperature=0.5))
    assert not torch.allclose(cold, ex.sample("diffusion", 8, 5, 1.0)) and not hasattr(fitted, "temperature")


def test_choose_picks_a_grid_face_and_resets_the_sliders(handlers, started):
    state, chosen, edited, *zeros = handlers.choose(started[1], 3)
    np.testing.assert_array_equal(chosen, started[0][3])
    np.testing.assert_array_equal(edited, chosen)
    assert zeros == [0.0] * handlers.ex.n_sliders
    with pytest.raises(FacevaeError, match="no face number 6"):
        handlers.choose(started[1], 6)


def test_reset_gives_back_the_chosen_face(handlers, started):
    edited, *zeros = handlers.reset(started[1])
    np.testing.assert_array_equal(edited, started[2])
    assert set(zeros) == {0.0}


def test_interpolation_runs_between_the_chosen_ends(handlers, started):
    state, face_b = handlers.set_end("b", started[1], *_zeros(handlers, Male=1.5))
    assert _is_face(face_b)
    strip, gif = handlers.interpolate(state, 4, "linear")
    assert strip.shape == (SIZE + 4, 4 * (SIZE + 2) + 2, 3)
    np.testing.assert_array_equal(strip[2:2 + SIZE, -(SIZE + 2):-2], face_b)  # the last frame is B
    np.testing.assert_array_equal(strip[2:2 + SIZE, 2:2 + SIZE], started[-4])  # the first is A
    with pytest.raises(FacevaeError, match="2 to 32 steps"):
        handlers.interpolate(state, 1, "linear")


def test_downloads_on_disk_stay_bounded(handlers, started, monkeypatch):
    monkeypatch.setattr("facevae.web.handlers.FILES_KEEP", 3)
    paths = [handlers.interpolate(started[1], 3, "slerp")[1] for _ in range(4)]
    paths.append(handlers.named_png(started[2], "facevae-face.png"))
    assert [p for p in paths if os.path.exists(p)] == paths[-3:]
    assert len(list(handlers.gif_dir.iterdir())) == 3  # their folders go too


def test_downloads_are_named_for_what_they_show(handlers, started):
    gif = handlers.interpolate(started[1], 5, "linear")[1]
    assert os.path.basename(gif) == "facevae-interpolation-linear-5.gif"
    values = _zeros(handlers, Smiling=2.0, Male=-1.5)
    assert handlers.edit_name(values) == "facevae-edit-smiling+2-male-1.5.png"
    assert handlers.edit_name(_zeros(handlers)) == "facevae-face.png"
    path = handlers.named_png(handlers.edit(started[1], *values), handlers.edit_name(values))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (SIZE, SIZE)
        np.testing.assert_array_equal(np.asarray(im), handlers.edit(started[1], *values))


def test_handlers_before_the_page_loaded_say_so(handlers):
    with pytest.raises(FacevaeError, match="not finished loading"):
        handlers.edit(None, *_zeros(handlers))
    with pytest.raises(FacevaeError, match="not finished loading"):
        handlers.interpolate({"grid": None, "base": None, "a": None, "b": None}, 5, "slerp")


def test_wrong_number_of_slider_values_is_an_error(handlers, started):
    with pytest.raises(FacevaeError, match="slider values"):
        handlers.edit(started[1], 1.0)


# ----------------------------------------------------------------------------- start-up pieces

class _Probe(torch.nn.Module):
    """decode then encode gives z scaled per dimension: activity is exactly the scale squared."""

    def __init__(self, scale):
        super().__init__()
        self.scale = torch.tensor(scale)

    def decode(self, z):
        return z[:, None, None, :]

    def encode(self, x):
        mean = x.flatten(1) * self.scale
        return DiagonalGaussian(mean, torch.zeros_like(mean))


def test_active_dimensions_rank_by_spread_of_the_posterior_means():
    scale = [0.0, 3.0, 0.01, 1.0, 2.0]
    dims, spread = active_dimensions(_Probe(scale), 5, k=3, n=4000)
    assert dims.tolist() == [1, 4, 3]
    torch.testing.assert_close(spread, torch.tensor([3.0, 2.0, 1.0]), rtol=0.06, atol=0)


def test_without_cached_vectors_or_data_the_sliders_are_off_with_a_reason(tmp_path):
    cfg = tiny_config()
    model = build_model(cfg.model).eval()
    save_weights(tmp_path / "model.safetensors", cfg, model.state_dict())
    names, steps, note = load_attributes(FaceVAE(load_model(tmp_path / "model.safetensors")), None, print)
    assert names == [] and steps is None
    assert "--data" in note
    ex = Explorer(FaceVAE.from_model(model, cfg), names, steps, note)
    assert ex.n_sliders == LATENT  # latent-dimension sliders only


def test_samplers_always_offer_the_prior(tmp_path):
    cfg = tiny_config()
    save_weights(tmp_path / "model.safetensors", cfg, build_model(cfg.model).state_dict())
    samplers, note = load_samplers(FaceVAE(load_model(tmp_path)))
    assert "prior" in samplers
    assert set(samplers) <= set(SAMPLER_NAMES) and "two_stage" in SAMPLER_NAMES
    assert bool(note) == (set(samplers) != set(SAMPLER_NAMES))
    missing = [n for n in SAMPLER_NAMES if n not in samplers]
    assert note.startswith(f"Not fitted to this model's training latents yet: {', '.join(missing)}.")


def test_serve_defaults_to_localhost():
    import facevae.cli  # noqa: F401  (registers the commands)
    from facevae.cli.app import app
    from facevae.cli.serve import _is_loopback

    result = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output and "--data" in result.output
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("0.0.0.0")


@pytest.mark.slow  # importing Gradio takes seconds
def test_page_builds_with_the_expected_controls(handlers):
    pytest.importorskip("gradio")
    from facevae.web.page import build_app

    demo = build_app(handlers)
    ids = {c.get("props", {}).get("elem_id") for c in demo.get_config_file()["components"]}
    assert {"new-faces", "faces", "upload", "upload-error", "edited", "strip", "gif", "slider-Smiling"} <= ids
    assert {f"slider-z{int(d)}" for d in handlers.ex.dims} <= ids
    # no API on purpose: every interaction needs the session's state, which a bare call lacks
    assert demo.get_api_info() == {"named_endpoints": {}, "unnamed_endpoints": {}}


@pytest.mark.slow
def test_trained_run_gets_all_forty_attribute_sliders(web_run, web_data, tmp_path):
    ex = Explorer.load(web_run, data=web_data, device="cpu", log=lambda m: None)
    assert len(ex.attr_names) == 40 and "Smiling" in ex.attr_names and not ex.attr_note
    h = Handlers(ex, n_faces=4, gif_dir=tmp_path)
    state = h.start("prior", 1.0, 0, 4, "slerp")[1]
    values = [0.0] * ex.n_sliders
    values[ex.attr_names.index("Smiling")] = 3.0
    assert not np.array_equal(h.edit(state, *values), h.edit(state, *[0.0] * ex.n_sliders))
    assert set(ex.samplers) == set(SAMPLER_NAMES) and not ex.sampler_note
    faces, _ = h.draw("gmm", 0.8, 0, state)
    assert len(faces) == 4 and all(_is_face(f) for f in faces)
    # without --data the cached vectors and stored samplers are found again
    again = Explorer.load(web_run, device="cpu", log=lambda m: None)
    assert again.attr_names == ex.attr_names and set(again.samplers) == set(ex.samplers)



def test_the_page_says_which_decoder_draws(handlers, explorer):
    from facevae.web.page import header

    assert "likelihood decoder" in header(handlers) and "sharp decoder" not in header(handlers)
    sharp = Explorer(FaceVAE(explorer.vae.checkpoint, sharp_decoder=explorer.vae.model.decoder), dims=explorer.dims,
                     dim_scale=explorer.dim_scale)
    assert "drawn by its sharp decoder" in header(Handlers(sharp, n_faces=2))


def test_a_64px_upload_on_a_128px_model_is_enlarged_with_a_note(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config("model.image_size=128", "model.widths=[4,8,8,8,8]")
    model = build_model(cfg.model).eval()
    ex = Explorer(FaceVAE.from_model(model, cfg), list(NAMES), torch.zeros(len(NAMES), cfg.model.latent_dim))
    h = Handlers(ex, n_faces=2, gif_dir=tmp_path, align=False)
    notes, seen, recon, *_ = h.upload(_png(size=(64, 64)), h.start("prior", 1.0, 0, 5, "slerp")[1])
    assert _is_face(seen, 128) and _is_face(recon, 128)  # taken and resized, not refused
    assert "square the model takes from the 64x64 photo is only 53 pixels across" in notes and "enlarged to 128x128 for this 128 px model" in notes


def test_an_aligned_photo_is_warned_about_its_face_size_only():
    from facevae.data.photos import photo_notes

    assert photo_notes(640, 360, 300, 128, aligned=True) == []  # landscape, but the landmarks place the face
    small = photo_notes(640, 480, 40, 128, aligned=True)  # a 40 px face in a group photo
    assert len(small) == 1 and "spans only 40 pixels" in small[0] and "enlarged to 128x128" in small[0]
    assert any("landscape" in n for n in photo_notes(640, 360, 300, 128))
    unaligned = photo_notes(48, 48, 40, 128)  # no landmarks: the centre crop was measured, not a face
    assert len(unaligned) == 1 and "from the 48x48 photo is only 40 pixels across" in unaligned[0]


def test_the_aligned_side_is_the_faces_not_the_photos(monkeypatch):
    """A small face in a big photo: the side is what the crop covered of the face, via the landmark scale."""
    from facevae.data import photos

    monkeypatch.setattr(photos, "align_face", lambda img, face: (Image.new("RGB", (178, 218)), 148 / 37))
    photo = Image.new("RGB", (640, 480), (90, 90, 90))
    x, side = photos.prepared_photo(photo, 128, 148, align=True)
    assert x.shape == (3, 128, 128) and side == pytest.approx(37.0)
    assert photos.prepared_photo(photo, 128, 148, align=False)[1] == pytest.approx(480)  # min(532, 640, 480)
