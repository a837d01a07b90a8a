"""The one photo reader: EXIF orientation, transparency and greyscale, the same for the CLI, the page and Python."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from facevae.data.photos import open_photo, photo_array
from facevae.errors import FacevaeError


@pytest.fixture
def face(celeba_root) -> Image.Image:
    return Image.open(celeba_root / "img_align_celeba" / "162862.jpg").convert("RGB")


def exif_rotated_jpeg(img: Image.Image) -> bytes:
    """The bytes a phone writes for `img` held sideways: pixels turned, EXIF orientation 6 to turn them back."""
    stored = img.transpose(Image.Transpose.ROTATE_90)  # what the sensor saw
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = io.BytesIO()
    stored.save(out, format="JPEG", quality=95, exif=exif)
    return out.getvalue()


def test_an_exif_rotated_photo_comes_out_upright(face, tmp_path):
    path = tmp_path / "phone.jpg"
    path.write_bytes(exif_rotated_jpeg(face))
    assert Image.open(path).size == face.size[::-1]  # stored sideways
    upright = open_photo(path)
    assert upright.size == face.size
    err = np.abs(np.asarray(upright, np.int16) - np.asarray(face, np.int16)).mean()
    assert err < 4, err  # only JPEG's loss apart; sideways would differ by tens of levels


def test_one_phone_photo_encodes_the_same_way_everywhere(face, tmp_path):
    from facevae.tasks.generate import read_images
    from facevae.web.upload import read_upload

    data = exif_rotated_jpeg(face)
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    cli = read_images([path], 64, 148, align=False)[0].numpy()  # the centre crop everywhere (alignment: test_align)
    page = photo_array(read_upload(data), 64, 148)
    python = photo_array(Image.open(io.BytesIO(data)), 64, 148)
    assert np.array_equal(cli, page) and np.array_equal(cli, python)
    assert np.abs(cli.astype(int) - photo_array(face, 64, 148).astype(int)).mean() < 4


def test_transparency_is_flattened_onto_white_and_grey_becomes_rgb(face):
    rgba = face.convert("RGBA")
    alpha = np.zeros(face.size[::-1], np.uint8)
    alpha[:, : face.width // 2] = 255  # right half transparent
    rgba.putalpha(Image.fromarray(alpha))
    flat = np.asarray(open_photo(rgba))
    assert flat.shape[2] == 3 and (flat[:, face.width // 2 + 1:] == 255).all()
    assert np.array_equal(flat[:, :10], np.asarray(face)[:, :10])
    grey = open_photo(face.convert("L"))
    assert grey.mode == "RGB" and np.array_equal(np.asarray(grey)[..., 0], np.asarray(grey)[..., 2])


def test_bytes_that_are_not_an_image_are_one_line_errors(tmp_path):
    with pytest.raises(FacevaeError, match="corrupt or not an image"):
        open_photo(b"GIF89a but not really")
    with pytest.raises(FacevaeError, match="is a folder"):
        open_photo(tmp_path)


def test_photo_array_is_the_training_crop(face):
    x = photo_array(face, 32, 148)
    assert x.shape == (3, 32, 32) and x.dtype == np.uint8
    assert torch.from_numpy(x).float().std() > 10  # a face, not a blank
