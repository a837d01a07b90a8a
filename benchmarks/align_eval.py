"""Does aligning a user's photo help? Reconstructions of moved mini-CelebA valid faces, with and without alignment.

    python benchmarks/align_eval.py --data ../shared/celeba_mini --out docs/results_align.json
    python benchmarks/align_eval.py --data ../shared/celeba_mini --limit 20 --no-fid    # a smoke check

Each valid face (178x218, aligned by CelebA) is turned, scaled and shifted by a seeded
random similarity (rotation +-20 degrees, scale 0.6-1.3, shift +-15% of the canvas) and
pasted on a canvas 1.6x larger filled with its edge colour: a photo as a person might
send it. The model reconstructs each such photo centre-cropped (--no-align) and aligned
(detect + warp onto the CelebA template); a photo where no face is found falls back to the
centre crop, as the user told to pass --no-align would, and counts against the detection
rate. The untouched faces' own reconstructions are the reference row. PSNR and SSIM
(`facevae.metrics.recon`) are against the model's crop of the untouched face; FID is of
each reconstruction set against the untouched valid faces (all of them, or --limit).
Reconstructions are rounded to 8 bits as a saved PNG would be.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone

import numpy as np
import torch
from PIL import Image

import facevae
from facevae.data import open_dataset
from facevae.data.align import align_photo, edge_colour
from facevae.data.cache import preprocess_image
from facevae.errors import FacevaeError
from facevae.io import atomic_write_text
from facevae.metrics import fid
from facevae.metrics.recon import recon_metrics
from facevae.tasks.evaluate import fid_to_reference
from facevae.viz.grid import to_uint8

CANVAS = 1.6  # the photo's sides over the face picture's
MAX_DEGREES, SCALES, MAX_SHIFT = 20.0, (0.6, 1.3), 0.15


def moves(n: int, seed: int) -> np.ndarray:
    """(n, 4): degrees, scale, x shift, y shift (fractions of the canvas), drawn for all faces at once.

    Drawn for every valid face even under --limit, so the first 20 are those of the full run.
    """
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-MAX_DEGREES, MAX_DEGREES, n), rng.uniform(*SCALES, n),
                     rng.uniform(-MAX_SHIFT, MAX_SHIFT, n), rng.uniform(-MAX_SHIFT, MAX_SHIFT, n)], 1)


def posed(face: Image.Image, degrees: float, scale: float, dx: float, dy: float) -> Image.Image:
    """`face` turned about its centre, scaled and pasted off-centre on a 1.6x canvas of its edge colour."""
    fill = edge_colour(face)
    turned = face.rotate(degrees, Image.BICUBIC, expand=True, fillcolor=fill)
    turned = turned.resize((round(turned.width * scale), round(turned.height * scale)), Image.LANCZOS)
    w, h = round(face.width * CANVAS), round(face.height * CANVAS)
    photo = Image.new("RGB", (w, h), fill)
    photo.paste(turned, (round(w / 2 + dx * w - turned.width / 2), round(h / 2 + dy * h - turned.height / 2)))
    return photo


def aligned_inputs(photos: list[Image.Image], size: int, crop: int) -> tuple[torch.Tensor, int, float]:
    """(uint8 model inputs, faces found, seconds per photo of detect + warp); no face -> the centre crop."""
    out, found, spent = [], 0, 0.0
    for photo in photos:
        start = time.perf_counter()
        try:
            photo_in, found = align_photo(photo), found + 1
        except FacevaeError:
            photo_in = photo
        spent += time.perf_counter() - start
        out.append(preprocess_image(photo_in, size, crop))
    return torch.from_numpy(np.stack(out)), found, spent / max(1, len(photos))


def reconstruct(vae: facevae.FaceVAE, x8: torch.Tensor) -> torch.Tensor:
    return to_uint8(vae.reconstruct(x8.float().div(255)))


def row(originals: torch.Tensor, recons: torch.Tensor, stats) -> dict:
    m = recon_metrics(originals, recons)
    out = {k: round(m[k], 4) for k in ("psnr_db", "psnr_db_stderr", "ssim", "ssim_stderr")}
    if stats is not None:
        extractor, mu, sigma = stats
        out["fid"] = round(fid_to_reference(fid.features_of(recons, extractor, progress=False), mu, sigma), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="anything facevae.load takes; default: the bundled model")
    ap.add_argument("--decoder", default="auto", help="sharp, likelihood or auto (what `facevae reconstruct` uses)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=0, help="the first N valid faces only (a quick check)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fid", action="store_true", help="skip FID (no Inception run)")
    ap.add_argument("--out", default=None, help="JSON file to write the result to (it is printed either way)")
    a = ap.parse_args()
    vae = facevae.load(a.ckpt, device="cpu", decoder=a.decoder)
    size, crop = vae.image_size, vae.config.data.crop
    ds = open_dataset(a.data)
    paths = ds.paths(ds.split_indices("valid"))
    params = moves(len(paths), a.seed)[: a.limit or None]
    faces = [Image.open(p).convert("RGB") for p in paths[: len(params)]]
    photos = [posed(f, *p) for f, p in zip(faces, params)]
    originals = torch.from_numpy(np.stack([preprocess_image(f, size, crop) for f in faces]))
    centred = torch.from_numpy(np.stack([preprocess_image(p, size, crop) for p in photos]))
    aligned, found, seconds = aligned_inputs(photos, size, crop)
    stats = None
    if not a.no_fid:
        extractor = fid.InceptionFeatures(device="cpu")
        stats = (extractor, *fid.stats_of(fid.features_of(originals, extractor, progress=False)))
    result = {
        "model": vae.label, "weights_sha1": vae.weights_id, "decoder": vae.decoder, "images": len(photos),
        "seed": a.seed, "photos": {"rotation_degrees": MAX_DEGREES, "scale": SCALES, "shift": MAX_SHIFT,
                                   "canvas": CANVAS},
        "detection_rate": round(found / len(photos), 4), "align_seconds_per_photo": round(seconds, 3),
        "rows": {name: row(originals, reconstruct(vae, x8), stats)
                 for name, x8 in (("untouched faces (reference)", originals), ("centre crop (--no-align)", centred),
                                  ("aligned", aligned))},
        "fid_against": f"the {len(photos)} untouched valid faces" if stats else None,
        "machine": f"CPU, {torch.get_num_threads()} threads", "torch": torch.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "command": "python benchmarks/align_eval.py " + shlex.join(sys.argv[1:]),
    }
    if a.out:
        atomic_write_text(a.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
