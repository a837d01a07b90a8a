"""Aligning a user's photo to the CelebA template (issue 26): the math, the detector, every entry point.

Pictures are made here from mini-CelebA valid faces (turned, scaled, pasted on a larger
canvas); none is kept in the repository. Tests that run the detector skip without faceie.
"""
from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import facevae
from facevae.data import detect, photos
from facevae.data.align import NO_FACE, align_photo, edge_colour, similarity, template, warp
from facevae.data.photos import open_photo, photo_array, resolve_align
from facevae.errors import FacevaeError

VALID = ["162862.jpg", "162886.jpg", "162922.jpg"]
SIZE, CROP = 64, 148  # the bundled model's input


def matrix(degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[scale * math.cos(t), -scale * math.sin(t), shift[0]],
                     [scale * math.sin(t), scale * math.cos(t), shift[1]]])


def posed(face: Image.Image, degrees: float, scale: float, centre: tuple[int, int],
          canvas: Image.Image | tuple[int, int] = (420, 460)) -> Image.Image:
    """`face` turned by `degrees` (counter-clockwise), scaled and pasted centred at `centre` on a canvas of its edge colour."""
    fill = edge_colour(face)
    turned = face.rotate(degrees, Image.BICUBIC, expand=True, fillcolor=fill)
    turned = turned.resize((round(turned.width * scale), round(turned.height * scale)), Image.LANCZOS)
    out = canvas.copy() if isinstance(canvas, Image.Image) else Image.new("RGB", canvas, fill)
    out.paste(turned, (centre[0] - turned.width // 2, centre[1] - turned.height // 2))
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10((a - b).square().mean()))


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def eye_angle(landmarks: np.ndarray) -> float:
    (x1, y1), (x2, y2) = landmarks[:2]
    return math.degrees(math.atan2(y2 - y1, x2 - x1))


@pytest.fixture(scope="module")
def faces(celeba_root) -> list[Image.Image]:
    return [Image.open(celeba_root / "img_align_celeba" / name).convert("RGB") for name in VALID]


@pytest.fixture(scope="module")
def vae():
    return facevae.load(device="cpu")


@pytest.fixture
def detector():
    pytest.importorskip("faceie")


def gradient(size=(300, 360)) -> Image.Image:
    ramp = np.linspace(0, 255, size[0])[None, :, None] * np.ones((size[1], 1, 3))
    return Image.fromarray(ramp.astype(np.uint8))


# ----------------------------------------------------------------------------- the math, no detector

def test_similarity_recovers_a_known_rotation_scale_and_shift():
    src = np.random.default_rng(0).uniform(0, 200, size=(5, 2))
    m = matrix(23.0, 0.7, (15.0, -40.0))
    np.testing.assert_allclose(similarity(src, src @ m[:, :2].T + m[:, 2]), m, atol=1e-9)
    mirrored = similarity(src, src * [-1, 1])  # the best fit to a mirror image is still a rotation
    assert np.linalg.det(mirrored[:, :2]) > 0


def test_warp_puts_a_pixel_where_the_matrix_says_and_fills_with_the_edge_colour():
    a = np.full((60, 50, 3), 40, np.uint8)
    a[20, 10] = 255
    out = np.asarray(warp(Image.fromarray(a), matrix(0, 2.0, (5, 3)), (100, 120)), float)[..., 0] - 40
    ys, xs = np.indices(out.shape)
    w = out.clip(0).sum()
    assert abs((xs * out.clip(0)).sum() / w - 25) < 0.1 and abs((ys * out.clip(0)).sum() / w - 43) < 0.1
    assert out[-1, -1] == 0  # outside the photo: its edge colour, not black


def test_the_template_is_a_celeba_face():
    t = template()
    assert t.shape == (5, 2) and (t[:, 0] > 0).all() and (t[:, 0] < 178).all() and (t[:, 1] < 218).all()
    assert t[0, 0] < t[2, 0] < t[1, 0] and t[0, 1] < t[2, 1] < t[3, 1]  # eyes either side of the nose, mouth below
    assert abs(eye_angle(t)) < 2


def test_a_face_is_chosen_only_with_alignment():
    assert resolve_align(True) and not resolve_align(False) and resolve_align(None, face=1)
    with pytest.raises(FacevaeError, match="needs alignment"):
        resolve_align(False, face=1)


# ----------------------------------------------------------------------------- with the detector

def test_a_turned_scaled_off_centre_face_comes_back_level(detector, faces, vae):
    face = faces[0]
    photo = posed(face, 20, 0.7, (270, 190))
    aligned = align_photo(photo)
    assert aligned.size == (178, 218)
    found = detect.detect_faces(aligned)[0].landmarks
    assert abs(eye_angle(found)) < 3
    assert np.abs(found[:2] - template()[:2]).max() < 4  # pixels, in 178x218
    target = torch.from_numpy(photo_array(face, SIZE, CROP)).float()[None] / 255
    with_align, without = psnr(vae.reconstruct(photo, align=True), target), psnr(vae.reconstruct(photo, align=False), target)
    # about 17 dB against 12 (the bundled model gets about 22 from the untouched face itself)
    assert with_align > without + 3, (with_align, without)


def test_the_side_the_crop_covered_follows_the_face_size(detector, faces):
    """A CelebA face shrunk to 0.4x on a larger canvas: the model's 148-wide crop covered about 0.4 x 148 pixels."""
    _, full = photos.prepared_photo(posed(faces[0], 0, 1.0, (210, 230)), SIZE, CROP, align=True)
    _, small = photos.prepared_photo(posed(faces[0], 0, 0.4, (210, 230)), SIZE, CROP, align=True)
    # this face is a little smaller than the template's mean face, hence 163 rather than 148
    assert full == pytest.approx(CROP, rel=0.15) and small / full == pytest.approx(0.4, rel=0.05)


def test_a_photo_without_a_face_is_refused_in_one_line(detector, tmp_path):
    blank = tmp_path / "blank.png"
    gradient().save(blank)
    with pytest.raises(FacevaeError) as e:
        photo_array(blank, SIZE, CROP, align=True)
    assert str(e.value) == NO_FACE
    r = subprocess.run([sys.executable, "-m", "facevae", "reconstruct", "--images", str(blank), "--device", "cpu",
                        "--out", str(tmp_path / "r.png")], capture_output=True, text=True, timeout=600)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and lines == [f"error: {NO_FACE}"], r.stderr
    assert not (tmp_path / "r.png").exists()


def test_of_two_faces_the_largest_is_taken_and_face_picks_the_other(detector, faces):
    big, small = faces[0], faces[1]
    photo = posed(small, 0, 0.6, (390, 160), posed(big, 0, 1.0, (120, 150), (500, 320)))
    assert len(detect.detect_faces(photo)) == 2
    alone = [photo_array(f, SIZE, CROP, align=True) for f in (big, small)]
    first, second = photo_array(photo, SIZE, CROP, align=True), photo_array(photo, SIZE, CROP, True, face=1)
    # the same face aligned alone differs by the detector's jitter (~9 levels), another face by ~90
    assert mean_abs(first, alone[0]) < mean_abs(first, alone[1]) / 4
    assert mean_abs(second, alone[1]) < mean_abs(second, alone[0]) / 4
    with pytest.raises(FacevaeError, match=r"no face 2 in the photo: it has 2 faces \(0 to 1, largest first\)"):
        photo_array(photo, SIZE, CROP, True, face=2)


def test_an_exif_rotated_jpeg_aligns_like_the_upright_photo(detector, faces):
    photo = posed(faces[2], -12, 1.3, (230, 240))
    upright, sideways = io.BytesIO(), io.BytesIO()
    photo.save(upright, format="JPEG", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": what a phone held sideways writes
    photo.transpose(Image.Transpose.ROTATE_90).save(sideways, format="JPEG", quality=95, exif=exif)
    found = [detect.detect_faces(open_photo(f.getvalue()))[0].landmarks for f in (upright, sideways)]
    assert np.abs(found[0] - found[1]).max() < 3  # MTCNN moves a point by ~2 px with the JPEG noise alone
    a, b = (torch.from_numpy(photo_array(f.getvalue(), SIZE, CROP, align=True)).float() / 255 for f in (upright, sideways))
    assert psnr(a, b) > 25


def test_the_web_upload_aligns_and_refuses_a_photo_without_a_face(detector, faces, tmp_path):
    from facevae.models import build_model
    from facevae.web.explorer import Explorer
    from facevae.web.handlers import Handlers
    from tests.conftest import tiny_config

    cfg = tiny_config()
    ex = Explorer(facevae.FaceVAE.from_model(build_model(cfg.model).eval(), cfg), ["Smiling"], torch.zeros(1, 8))
    h = Handlers(ex, n_faces=2, gif_dir=tmp_path)
    state = h.start("prior", 1.0, 0, 3, "slerp")[1]
    png = io.BytesIO()
    posed(faces[0], 20, 0.7, (270, 190)).save(png, format="PNG")
    notes, seen, *_ = h.upload(png.getvalue(), state)
    expected = photo_array(align_photo(open_photo(png.getvalue())), 32, cfg.data.crop).transpose(1, 2, 0)
    assert notes == "" and np.array_equal(seen, expected)
    blank = io.BytesIO()
    gradient().save(blank, format="PNG")
    with pytest.raises(FacevaeError, match="^no face found in the photo"):
        h.upload(blank.getvalue(), state)


# ----------------------------------------------------------------------------- without the extra

def test_without_the_extra_photos_are_centre_cropped_with_one_note(celeba_root, vae, monkeypatch, capsys):
    monkeypatch.setattr(detect, "available", lambda backend=detect.DEFAULT: False)
    monkeypatch.setattr(photos, "_noted", False)
    path = celeba_root / "img_align_celeba" / VALID[0]
    z = vae.encode(path)
    torch.testing.assert_close(vae.encode([path, path]), torch.cat([z, z]))
    err = capsys.readouterr().err
    assert err.count(photos.NOT_ALIGNED) == 1 and err.strip() == photos.NOT_ALIGNED
    torch.testing.assert_close(z, vae.encode(path, align=False))
    with pytest.raises(FacevaeError, match=r"pip install 'facevae\[align\]'"):
        vae.encode(path, align=True)


def test_tensors_are_never_aligned(vae, monkeypatch):
    monkeypatch.setattr(detect, "detect_faces", lambda *a, **k: pytest.fail("a tensor went to the detector"))
    x = torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(vae.encode(x, align=True), vae.encode(x))
