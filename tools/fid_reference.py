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

import torch

from facevae.data import cached_images, open_dataset
from facevae.metrics import fid
from facevae.metrics.reference import reference_protocol
from facevae.tasks.evaluate import read_subset, resumable_features

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
    t0 = time.time()
    feats, spent = resumable_features(Path(a.work), len(idx), lambda s, e: read_subset(images, idx[s:e]), extractor,
                                      CHUNK)
    mu, sigma = fid.stats_of(feats)
    protocol = reference_protocol(ds, idx, a.split, a.size, a.crop, False, extractor.identity)
    fid.save_reference(a.out, mu, sigma, protocol)
    print(f"wrote {a.out}: {len(feats)} images; featurising in this run {spent:.0f} s, all {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
