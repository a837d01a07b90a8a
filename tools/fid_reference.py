"""Compute the committed FID reference statistics of a CelebA split, resumably.

    python tools/fid_reference.py --data ../shared/celeba_mini --work runs/fid_ref \\
        --out src/facevae/pretrained/fid/celeba_mini-train-c148-64px.npz

Features are written per chunk of 1,000 images into --work, so a kill loses at most one
chunk; run the same command again to continue. The mini-CelebA protocol (docs/results.md):
train split, crop 148, 64x64, NVIDIA's Inception in fp32, bilinear resize to 299.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from facevae.data import cached_images, open_dataset
from facevae.io import atomic_write
from facevae.metrics import fid
from facevae.metrics.reference import reference_protocol

CHUNK = 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--crop", type=int, default=148)
    ap.add_argument("--limit", type=int, default=0, help="first N images only (a quick check)")
    ap.add_argument("--work", required=True, help="folder for the per-chunk features")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    ds = open_dataset(a.data)
    idx = ds.split_indices(a.split)
    if a.limit:
        idx = idx[:a.limit]
    images = cached_images(ds, a.size, a.crop, False)
    extractor = fid.InceptionFeatures(device="cpu")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0, done = time.time(), 0
    for c, start in enumerate(range(0, len(idx), CHUNK)):
        part = work / f"features-{c:04d}.npy"
        chunk = idx[start:start + CHUNK]
        if part.exists() and len(np.load(part, mmap_mode="r")) == len(chunk):
            continue
        t = time.time()
        feats = fid.features_of(torch.from_numpy(np.ascontiguousarray(images[chunk])), extractor, progress=False)
        atomic_write(part, lambda tmp: np.save(open(tmp, "wb"), feats))
        done += len(chunk)
        print(f"chunk {c}: {len(chunk)} images in {time.time() - t:.0f} s "
              f"({len(chunk) / (time.time() - t):.2f} img/s), {start + len(chunk)}/{len(idx)}", flush=True)
    feats = np.concatenate([np.load(work / f"features-{c:04d}.npy") for c in range((len(idx) + CHUNK - 1) // CHUNK)])
    mu, sigma = fid.stats_of(feats)
    protocol = reference_protocol(ds, idx, a.split, a.size, a.crop, False, extractor.identity)
    fid.save_reference(a.out, mu, sigma, protocol)
    print(f"wrote {a.out}: {len(feats)} images; {done} featurised now in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
