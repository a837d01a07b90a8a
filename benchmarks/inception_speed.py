"""Inception img/s on this machine: the old NHWC TorchScript path against the frozen one; prints JSON.

    python benchmarks/inception_speed.py --data ../shared/celeba_mini --n 64

old     the TorchScript file as loaded, channels_last input (facevae before the freeze)
frozen  `fid.InceptionFeatures`: torch.jit.freeze + optimize_for_inference on the CPU
Both see the same --n real training images (crop 148, 64 px, read straight from the
JPEGs, no image cache), after a warm-up call each, and are timed batch by batch in
turn, so a change of load on a shared machine slows both alike. The relative feature difference
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


def interleaved(paths: dict, images: torch.Tensor, batch: int) -> tuple[dict, dict]:
    """(features, img/s) per path, timing the paths batch by batch in turn, so a load change hits both alike."""
    for run in paths.values():
        run(images[:2])  # warm-up: oneDNN picks its kernels on the first call
    feats = {name: [] for name in paths}
    seconds = dict.fromkeys(paths, 0.0)
    for i in range(0, len(images), batch):
        for name, run in paths.items():
            t = time.perf_counter()
            feats[name].append(run(images[i:i + batch]))
            seconds[name] += time.perf_counter() - t
    return ({name: torch.cat(f).numpy() for name, f in feats.items()},
            {name: len(images) / s for name, s in seconds.items()})


def main() -> None:
    a = parse_args()
    images = real_images(a.data, a.n, a.size, a.crop)
    load_before = os.getloadavg()[0]
    feats, ips = interleaved({"old": old_path(a.inception), "frozen": fid.InceptionFeatures(a.inception, "cpu")},
                             images, a.batch)
    rel = np.linalg.norm(feats["old"] - feats["frozen"], axis=1) / np.linalg.norm(feats["old"], axis=1)
    print(json.dumps({
        "images": len(images), "batch": a.batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "old_img_s": round(ips["old"], 2), "frozen_img_s": round(ips["frozen"], 2),
        "speedup": round(ips["frozen"] / ips["old"], 3),
        "max_rel_feature_diff": float(rel.max()), "within_tolerance": bool(rel.max() <= TOLERANCE),
    }))


if __name__ == "__main__":
    main()
