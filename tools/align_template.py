"""Measure the CelebA landmark template that `facevae.data.align` warps photos onto.

    python tools/align_template.py --data ../shared/celeba_mini --n 2000

Runs the alignment detector (`facevae.data.detect`, the align extra) on the first N
aligned train images at their original 178x218 and writes the mean position of each of
the five landmarks, over the images where a face was found (the largest one), to
src/facevae/data/celeba_landmarks.json with the count and this command. Measuring with
the detector that later reads the user's photo cancels its own bias (where it puts an
"eye"), which CelebA's hand-made landmark file would not.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facevae.data import open_dataset
from facevae.data.align import CELEBA_SIZE, TEMPLATE_FILE
from facevae.data.detect import detect_faces
from facevae.io import atomic_write_text

OUT = Path(__file__).resolve().parents[1] / "src" / "facevae" / "data" / TEMPLATE_FILE


def landmarks_of(paths: list[Path]) -> np.ndarray:
    """(K, 5, 2): the largest face's landmarks in each image where one is found."""
    found, start = [], time.perf_counter()
    for i, path in enumerate(paths, 1):
        with Image.open(path) as img:
            if img.size != CELEBA_SIZE:
                sys.exit(f"{path} is {img.size[0]}x{img.size[1]}, not an aligned 178x218 CelebA image")
            faces = detect_faces(img.convert("RGB"))
        if faces:
            found.append(faces[0].landmarks)
        if i % 200 == 0:
            print(f"{i}/{len(paths)} images, {len(found)} faces, {time.perf_counter() - start:.0f} s", flush=True)
    return np.stack(found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="CelebA root (img_align_celeba/ with its partition file)")
    ap.add_argument("--n", type=int, default=2000, help="the first N train images")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    ds = open_dataset(a.data)
    points = landmarks_of(ds.paths(ds.split_indices("train")[: a.n]))
    command = "python tools/align_template.py " + shlex.join(sys.argv[1:])
    record = {"mean": np.round(points.mean(0), 3).tolist(), "std": np.round(points.std(0), 3).tolist(),
              "count": len(points), "images": a.n, "command": command}
    atomic_write_text(a.out, as_json(record))
    print(json.dumps(record))


def as_json(record: dict) -> str:
    """One key a line, each list on its line: readable in a diff."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items()) + "\n}\n"


if __name__ == "__main__":
    main()
