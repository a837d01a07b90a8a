"""A photo moved onto the CelebA template: the face where the model saw faces in training.

CelebA's aligned images put the eyes, nose and mouth corners in nearly the same place
in every 178x218 picture. `align_photo` finds those five points in a photo
(`data/detect.py`), fits the rotation, scale and shift that best carries them onto
their mean CelebA positions (`celeba_landmarks.json`, measured by
`tools/align_template.py` with the same detector), and warps the photo with it into
a 178x218 picture, which the model's usual crop and resize then take.
"""
from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np
from PIL import Image

from facevae.data import detect
from facevae.errors import FacevaeError

CELEBA_SIZE = (178, 218)  # width, height of CelebA's aligned images
TEMPLATE_FILE = "celeba_landmarks.json"
NO_FACE = ("no face found in the photo: use a photo where the face is clearly visible, "
           "or pass --no-align to use the centre crop")


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix [sR | t] taking points `src` (N, 2) nearest to `dst` in least squares.

    Umeyama (1991): rotation, one scale and a shift, never a reflection (a mirrored
    face would still be a face, but not the person's).
    """
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    mean_s, mean_d = src.mean(0), dst.mean(0)
    s, d = src - mean_s, dst - mean_d
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ sign @ vt
    scale = float((sigma * np.diag(sign)).sum() / (s ** 2).sum(1).mean())
    return np.hstack([scale * rotation, (mean_d - scale * rotation @ mean_s)[:, None]])


def warp(img: Image.Image, matrix: np.ndarray, size: tuple[int, int] = CELEBA_SIZE) -> Image.Image:
    """`img` carried by `matrix` (2x3, photo pixel -> output pixel) onto a `size` picture.

    Bicubic; what lies outside the photo takes its mean edge colour, so the border
    reads as background rather than a black frame the model never saw.
    """
    fill = edge_colour(img)
    m = _about_pixel_centres(np.asarray(matrix, float))
    scale = scale_of(m)
    if scale < 1:  # PIL's affine warp samples without a low-pass filter: shrink first with resize, which has one
        w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
        m = m @ np.diag([img.width / w, img.height / h, 1.0])
        img = img.resize((w, h), Image.BICUBIC)
    inverse = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]  # PIL asks, for each output pixel, where to read
    return img.transform(size, Image.AFFINE, tuple(inverse.ravel()), Image.BICUBIC, fillcolor=fill)


def edge_colour(img: Image.Image) -> tuple[int, ...]:
    """The mean colour of the photo's outermost rows and columns."""
    a = np.asarray(img.convert("RGB"), float)
    edges = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return tuple(int(round(v)) for v in edges.mean(0))


def template() -> np.ndarray:
    """(5, 2) mean landmark positions in a 178x218 CelebA image, in the detector's order."""
    return _template().copy()


def align_photo(img: Image.Image, face_index: int | None = None) -> Image.Image:
    """The photo's largest face (or face `face_index`, 0-based, largest first) on the CelebA template, 178x218."""
    return align_face(img, face_index)[0]


def align_face(img: Image.Image, face_index: int | None = None) -> tuple[Image.Image, float]:
    """(`align_photo`'s picture, the scale from photo pixels to template pixels).

    The scale is template pixels per photo pixel, so the model's crop covered crop / scale
    photo pixels: a face smaller than the model's size is enlarged, and the caller may say so.
    """
    faces = detect.detect_faces(img)
    if not faces:
        raise FacevaeError(NO_FACE)
    i = 0 if face_index is None else face_index
    if not 0 <= i < len(faces):
        found = "1 face (face 0)" if len(faces) == 1 else f"{len(faces)} faces (0 to {len(faces) - 1}, largest first)"
        raise FacevaeError(f"there is no face {i} in the photo: it has {found}")
    matrix = similarity(faces[i].landmarks, template())
    return warp(img, matrix), scale_of(matrix)


def scale_of(matrix: np.ndarray) -> float:
    """The one scale of a similarity matrix (2x3): output pixels per photo pixel."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, float)[:, :2]))))


@functools.cache
def _template() -> np.ndarray:
    try:
        text = resources.files("facevae.data").joinpath(TEMPLATE_FILE).read_text()
    except FileNotFoundError:
        raise FacevaeError(f"the landmark template {TEMPLATE_FILE} is missing from facevae/data: "
                           "reinstall facevae") from None
    return np.asarray(json.loads(text)["mean"], float).reshape(5, 2)


def _about_pixel_centres(matrix: np.ndarray) -> np.ndarray:
    """`matrix` on pixel indices (the detector's coordinates) -> on PIL's, where pixel i spans [i, i + 1)."""
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    return (half @ np.vstack([matrix, [0.0, 0.0, 1.0]]) @ np.linalg.inv(half))[:2]
