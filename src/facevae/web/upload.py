"""Checking an uploaded file: its bytes decide what it is, never its name.

The web page hands over the bytes Gradio received (`gr.File(type="binary")`), so
no path that came from the browser is ever opened here.
"""
from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from facevae.data.photos import open_photo
from facevae.errors import FacevaeError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # also Gradio's max_file_size, so big files never reach Python
MAX_UPLOAD_PIXELS = 40_000_000  # a small file can still decode to a huge image
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
CELEBA_ASPECT = 178 / 218  # width / height of the aligned CelebA images the model learned from
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def read_upload(data: bytes | None) -> Image.Image:
    """The uploaded bytes as an upright RGB image (`data/photos.py`), or FacevaeError saying what is wrong."""
    if not data:
        raise FacevaeError("the upload is empty: choose a face photo (JPEG, PNG or WebP)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise FacevaeError(f"the upload is {len(data) / 2**20:.1f} MB, over the {MAX_UPLOAD_BYTES // 2**20} MB "
                           "limit: send a smaller photo")
    fmt, (w, h) = _probe(data)
    if fmt not in FORMATS:
        raise FacevaeError(f"the upload is a {fmt} image, which this page does not take: "
                           f"send {', '.join(FORMATS[:-1])} or {FORMATS[-1]}")
    if w * h > MAX_UPLOAD_PIXELS:
        raise FacevaeError(f"the upload is {w}x{h} pixels, more than {MAX_UPLOAD_PIXELS // 10**6} megapixels: "
                           "send a smaller photo")
    try:
        return open_photo(data)  # the one photo reader: EXIF, transparency and greyscale as everywhere else
    except FacevaeError:
        raise FacevaeError("the upload is a damaged image (it could not be decoded): send another photo") from None


def _probe(data: bytes) -> tuple[str, tuple[int, int]]:
    """(format, size) from the header, after PIL's integrity check; raises for anything that is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = img.format or "unknown", img.size
            img.verify()
    except _UNREADABLE:
        raise FacevaeError("the upload is not an image (its content is not JPEG, PNG, WebP or another "
                           "picture format, whatever its name says): choose a face photo") from None
    return fmt, size
