"""Inception img/s on this machine: the old NHWC TorchScript path against the frozen one; prints JSON.

    python benchmarks/inception_speed.py --data ../shared/celeba_mini --n 64

old     the TorchScript file as loaded, channels_last input (facevae before the freeze)
frozen  `fid.InceptionFeatures`: torch.jit.freeze + optimize_for_inference on the CPU
Both see the same --n real training images (crop 148, 64 px, read straight from the
JPEGs, no image cache), after one warm-up batch each. The relative feature difference
is per image, ||f_old - f_frozen|| / ||f_old||; the protocol needs its maximum <= 1e-5.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from facevae.data import open_dataset
from facevae.data.cache import load_image
from facevae.metrics import fid

TOLERANCE = 1e-5


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/celeba_mini")
    p.add_argument("--n", type=int, default=64, help="images timed per path")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--crop", type=int, default=148)
    p.add_argument("--inception", default=None)
    return p.parse_args()


def real_images(data: str, n: int, size: int, crop: int) -> torch.Tensor:
    ds = open_dataset(data)
    paths = ds.paths(ds.split_indices("train")[:n])
    return torch.from_numpy(np.stack([load_image(p, size, crop) for p in paths]))


def old_path(inception: str | None):
    net = fid.load_inception(inception, "cpu")

    @torch.inference_mode()
    def run(images: torch.Tensor) -> torch.Tensor:
        x = fid.to_inception_input(images)
        return net(x.contiguous(memory_format=torch.channels_last)).double()

    return run


def timed(run, images: torch.Tensor, batch: int) -> tuple[np.ndarray, float]:
    run(images[:batch])  # warm-up: the frozen graph is specialised on its first call
    t = time.perf_counter()
    feats = torch.cat([run(images[i:i + batch]) for i in range(0, len(images), batch)])
    return feats.numpy(), len(images) / (time.perf_counter() - t)


def main() -> None:
    a = parse_args()
    images = real_images(a.data, a.n, a.size, a.crop)
    f_old, old_ips = timed(old_path(a.inception), images, a.batch)
    f_new, new_ips = timed(fid.InceptionFeatures(a.inception, "cpu"), images, a.batch)
    rel = np.linalg.norm(f_old - f_new, axis=1) / np.linalg.norm(f_old, axis=1)
    print(json.dumps({
        "images": len(images), "batch": a.batch, "threads": torch.get_num_threads(),
        "load_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__,
        "old_img_s": round(old_ips, 2), "frozen_img_s": round(new_ips, 2), "speedup": round(new_ips / old_ips, 3),
        "max_rel_feature_diff": float(rel.max()), "within_tolerance": bool(rel.max() <= TOLERANCE),
    }))


if __name__ == "__main__":
    main()
