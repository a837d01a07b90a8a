"""Read CelebA in its original layout, or any plain folder of face images.

CelebA layout: ROOT/img_align_celeba/*.jpg, list_attr_celeba.txt (count line, 40
names, one +1/-1 row per image), list_eval_partition.txt ("000001.jpg 0" rows,
0/1/2 = train/valid/test) and, optionally, identity_CelebA.txt. CRLF or LF.
Images listed but absent are dropped and counted, so a subset folder works.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facevae.errors import FacevaeError

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
SPLITS = {"train": 0, "valid": 1, "test": 2}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class FaceDataset:
    """File list plus annotations; images themselves are read by `data.cache`."""

    root: Path
    image_dir: Path
    filenames: list[str]
    partition: np.ndarray  # int8 per image: 0 train, 1 valid, 2 test
    attributes: np.ndarray | None = None  # int8 (N, 40), +1/-1
    attr_names: list[str] | None = None
    identity: np.ndarray | None = None  # int32 per image
    missing: int = 0  # annotated images absent from the folder

    @property
    def is_celeba(self) -> bool:
        return self.attributes is not None

    def __len__(self) -> int:
        return len(self.filenames)

    def paths(self, indices=None) -> list[Path]:
        idx = range(len(self)) if indices is None else indices
        return [self.image_dir / self.filenames[i] for i in idx]

    def split_indices(self, split: str, flag: str = "--split") -> np.ndarray:
        """Indices of a split; `flag` is the option the user gave it with, for the error message."""
        if split == "all":
            return np.arange(len(self))
        if split not in SPLITS:
            raise FacevaeError(f"unknown split {split!r} ({flag}); choose one of: {', '.join(SPLITS)}, all")
        idx = np.flatnonzero(self.partition == SPLITS[split])
        if idx.size == 0:
            raise FacevaeError(f"split {split!r} of {self.root} holds no images; choose another {flag}")
        return idx


def open_dataset(root: str | Path, val_fraction: float = 0.02) -> FaceDataset:
    """CelebA when the folder has img_align_celeba/, else a plain folder of images."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FacevaeError(f"data folder {root} does not exist: check the --data path")
    if not root.is_dir():
        raise FacevaeError(f"{root} is a file, not a folder: pass the CelebA folder (holding img_align_celeba/)")
    if (root / IMAGE_DIR).is_dir():
        return _open_celeba(root)
    return _open_plain(root, val_fraction)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FacevaeError(
            f"annotation file {path.name} is missing from {path.parent}: "
            "copy it from the CelebA release (or run `facevae data download`)"
        )
    # splitlines() handles CRLF and LF alike
    return [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]


def read_partition(path: Path) -> dict[str, int]:
    out = {}
    for n, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise FacevaeError(f"{path.name} line {n} is malformed ({line.strip()[:60]!r}): expected 'NAME.jpg 0|1|2'")
        out[parts[0]] = int(parts[1])
    return out


def read_attributes(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    lines = _read_lines(path)
    if len(lines) < 2:
        raise FacevaeError(f"{path.name} is truncated: expected a count line and a line of attribute names")
    names = lines[1].split()
    rows = {}
    for n, line in enumerate(lines[2:], start=3):
        parts = line.split()
        values = parts[1:]
        if len(values) != len(names) or any(v not in ("1", "-1") for v in values):
            raise FacevaeError(
                f"{path.name} line {n} is malformed: expected a file name and {len(names)} values of 1 or -1"
            )
        rows[parts[0]] = np.array(values, dtype=np.int8)
    return names, rows


def read_identity(path: Path) -> dict[str, int]:
    out = {}
    for n, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise FacevaeError(f"{path.name} line {n} is malformed: expected 'NAME.jpg IDENTITY'")
        out[parts[0]] = int(parts[1])
    return out


def _open_celeba(root: Path) -> FaceDataset:
    image_dir = root / IMAGE_DIR
    partition = read_partition(root / PARTITION_FILE)
    attr_names, attrs = read_attributes(root / ATTR_FILE)
    identity = read_identity(root / IDENTITY_FILE) if (root / IDENTITY_FILE).is_file() else None
    present = {p.name for p in image_dir.iterdir()}
    listed = sorted(partition)
    names = [f for f in listed if f in present]
    if not names:
        raise FacevaeError(
            f"{image_dir} holds none of the {len(listed)} images that {PARTITION_FILE} lists: "
            "is this the aligned CelebA image folder?"
        )
    no_attr = [f for f in names if f not in attrs]
    if no_attr:
        raise FacevaeError(f"{ATTR_FILE} has no row for {no_attr[0]} ({len(no_attr)} images): use the matching annotation file")
    return FaceDataset(
        root=root,
        image_dir=image_dir,
        filenames=names,
        partition=np.array([partition[f] for f in names], dtype=np.int8),
        attributes=np.stack([attrs[f] for f in names]),
        attr_names=attr_names,
        identity=np.array([identity.get(f, -1) for f in names], dtype=np.int32) if identity else None,
        missing=len(listed) - len(names),
    )


def _open_plain(root: Path, val_fraction: float) -> FaceDataset:
    names = sorted(p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not names:
        raise FacevaeError(
            f"{root} is not a CelebA folder (no {IMAGE_DIR}/) and holds no images: "
            "pass the CelebA root or a folder of face images"
        )
    # every k-th image goes to validation: deterministic and spread over the folder
    partition = np.zeros(len(names), dtype=np.int8)
    if len(names) > 1 and val_fraction > 0:
        partition[:: max(2, round(1 / val_fraction))] = SPLITS["valid"]
    return FaceDataset(root=root, image_dir=root, filenames=names, partition=partition)
