"""The one reader for a user's photos: a path, file bytes or a PIL image -> model input.

The CLI's `--images`, the web upload and `FaceVAE.encode` all come through here, so one
phone photo encodes the same way everywhere: EXIF orientation applied, transparency
flattened onto white, greyscale and palette images made RGB, then the training data's
own crop and resize (`preprocess_image`). CelebA's files go through `data/cache.py`.

With `align`, the face is first moved onto the CelebA template (`data/align.py`, the
align extra), so a tilted or off-centre face reaches the model where training faces were.
"""
from __future__ import annotations

import io
import re
import sys
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facevae.data import detect
from facevae.data.align import align_face
from facevae.data.cache import MAX_IMAGE_PIXELS, crop_side, preprocess_image, too_large
from facevae.errors import FacevaeError

Photo = Union[str, Path, bytes, Image.Image]
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)
WIDE, TALL = 1.0, 0.55  # width / height beyond which the centered crop is likely to cut or shrink the face
NOT_ALIGNED = "note: photos are centre-cropped, not aligned: pip install 'facevae[align]' to align them"
_noted = False  # NOT_ALIGNED is said once per process, not once per photo


def open_photo(source: Photo) -> Image.Image:
    """An RGB PIL image, upright as the camera meant it; FacevaeError for anything unreadable."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    name = "the photo" if isinstance(source, bytes) else f"image {source}"
    try:
        with warnings.catch_warnings():
            # a small file can decode to gigabytes: PIL's warning becomes our refusal
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source)) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:  # known from the header, before decoding
                    raise too_large(name, img.width * img.height)
                img.load()
                return to_rgb(img)
    except FileNotFoundError:
        raise FacevaeError(f"{name} does not exist: check the path") from None
    except IsADirectoryError:
        raise FacevaeError(f"{name} is a folder: give an image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        raise too_large(name, int(found[1]) if found else None) from None
    except _UNREADABLE as e:
        raise FacevaeError(f"cannot read {name} ({type(e).__name__}): it is corrupt or not an image; "
                           "give a JPEG, PNG or WebP photo") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """EXIF orientation applied; alpha composited on white (a cut-out face keeps a plain background)."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def photo_array(source: Photo, size: int, crop: int, align: bool | None = False,
                face: int | None = None) -> np.ndarray:
    """uint8 (3, size, size): the photo (aligned first, with `align`) cropped and resized as the training images were.

    `face` picks a face by number, 0 the largest; `align` None aligns when the extra is installed.
    """
    return prepared_photo(source, size, crop, align, face)[0]


def prepared_photo(source: Photo, size: int, crop: int, align: bool | None = False,
                   face: int | None = None) -> tuple[np.ndarray, float]:
    """(`photo_array`'s array, the side in photo pixels of the square the model's crop took).

    A side below `size` means the face was enlarged to reach the model: blurred before encoding.
    """
    img = open_photo(source)
    if resolve_align(align, face):
        aligned, scale = align_face(img, face)
        return preprocess_image(aligned, size, crop), crop_side(*aligned.size, crop) / scale
    return preprocess_image(img, size, crop), crop_side(*img.size, crop)


def resolve_align(align: bool | None, face: int | None = None) -> bool:
    """Whether to align: None means when the detector is installed (else a one-time note on stderr)."""
    if face is not None and align is False:
        raise FacevaeError("choosing a face (--face / face=) needs alignment: drop --no-align / align=False")
    if align is not None or face is not None:
        return align is not False  # asking for a face is asking for alignment, installed or not
    if detect.available():
        return True
    global _noted
    if not _noted:
        _noted = True
        print(NOT_ALIGNED, file=sys.stderr)
    return False


def photo_notes(width: int, height: int, side: float, size: int, aligned: bool = False) -> list[str]:
    """Warnings (not refusals) for a photo the CelebA crop will serve badly; [] for a CelebA-like portrait.

    `side` is the photo's pixels across the square the model took (`prepared_photo`), `size`
    the model's input size. An `aligned` photo is placed by its landmarks, so only its
    resolution can be wrong, never where the crop falls.
    """
    notes = []
    if side < size:  # e.g. a 64 px photo for a 128 px model, or a small face in a group photo
        # an aligned photo's side is the face the landmarks measured; otherwise it is only the centre crop
        what = (f"the face spans only {side:.0f} pixels of the {width}x{height} photo" if aligned
                else f"the square the model takes from the {width}x{height} photo is only {side:.0f} pixels across")
        notes.append(f"{what}: it is enlarged to {size}x{size} for this {size} px model, so it comes out blurred.")
    if aligned:
        return notes
    if width / height > WIDE:
        notes.append(f"a landscape photo ({width}x{height}): only the middle {side:.0f}x{side:.0f} square is used, "
                     "which is likely to cut the face or show it small (a ghost face). Crop the photo to a "
                     "portrait around the face first.")
    elif width / height < TALL:
        notes.append(f"a very tall photo ({width}x{height}): only the middle {side:.0f}x{side:.0f} square is used, "
                     "so the face may be cut off. Crop the photo to a portrait around the face first.")
    return notes


def prepared_photo_notes(source: Photo, size: int, crop: int, align: bool = False,
                         face: int | None = None) -> tuple[np.ndarray, list[str]]:
    """(`photo_array`'s array, `photo_notes` for it): the photo opened once for both."""
    img = open_photo(source)
    x, side = prepared_photo(img, size, crop, align, face)
    return x, photo_notes(*img.size, side, size, aligned=align)
