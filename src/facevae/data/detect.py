"""Faces and their five landmarks in a photo, from an optional detector (`pip install 'facevae[align]'`).

Backends sit in one table keyed by name, so another detector is one more entry.
Each is imported only when first used: without the extra, facevae loads and runs,
and only alignment says what to install.

Landmarks are (5, 2) pixel coordinates (x, y) in the photo, in the order: image-left
eye, image-right eye, nose, image-left mouth corner, image-right mouth corner.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from facevae.errors import FacevaeError

MISSING = ("aligning photos needs the align extra: pip install 'facevae[align]' "
           "(or pass --no-align / align=False)")
MIN_PROBABILITY = 0.9  # MTCNN's own output threshold is 0.7: lower scores include faces in wallpaper
WORK_SIDE = 640  # detection runs on at most this many pixels a side: a phone photo in 0.3 s, faces stay >48 px


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in photo pixels
    landmarks: np.ndarray  # (5, 2) float, the order in the module docstring
    probability: float

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass(frozen=True)
class Backend:
    module: str  # the package the backend imports, checked by `available`
    detect: Callable[[Image.Image], list[Face]]


def _mtcnn_faceie(img: Image.Image) -> list[Face]:
    from faceie.mtcnn.detect_faces import detect_faces as mtcnn  # lazy: an optional extra

    s = min(1.0, WORK_SIDE / max(img.size))
    small = img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR) if s < 1 else img
    if min(small.size) < 12:  # below MTCNN's 12-pixel window it raises instead of finding nothing
        return []
    # one orientation: EXIF is applied before, and a tilted head is what the landmarks then correct
    r = mtcnn(small, rotations=np.array([0.0]), extract_images=None)
    back = lambda v: (np.asarray(v, float) + 0.5) / s - 0.5  # pixel indices of `small` -> of `img`
    return [Face(tuple(back(b)), back(lm).reshape(5, 2), float(p))
            for p, b, lm in zip(r.probabilities, r.bounding_boxes, r.landmarks) if p >= MIN_PROBABILITY]


BACKENDS: dict[str, Backend] = {"mtcnn-faceie": Backend("faceie", _mtcnn_faceie)}
DEFAULT = "mtcnn-faceie"


def available(backend: str = DEFAULT) -> bool:
    """Whether the backend's package is installed (nothing is imported)."""
    return importlib.util.find_spec(_backend(backend).module) is not None


def detect_faces(img: Image.Image, backend: str = DEFAULT) -> list[Face]:
    """The faces in an RGB photo, largest box first; FacevaeError when the backend is not installed."""
    if not available(backend):
        raise FacevaeError(MISSING)
    return sorted(_backend(backend).detect(img.convert("RGB")), key=lambda f: -f.area)


def _backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise FacevaeError(f"unknown face detector {name!r}; choose one of: {', '.join(BACKENDS)}")
    return BACKENDS[name]
