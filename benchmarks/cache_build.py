"""Time the preprocessed-image cache build (decode, crop, resize) in exact and draft modes; prints JSON.

Each mode builds into a fresh temporary cache folder, so nothing is reused between
modes or from earlier runs. images/s is extrapolated to the 202,599 images of full
CelebA at the same worker count (the build is embarrassingly parallel, so with more
cores it scales roughly with the workers until the disk is the limit).

    python benchmarks/cache_build.py --data ../shared/celeba_mini --workers 2 --size 64
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from facevae.data import cached_images, open_dataset

FULL_CELEBA = 202_599


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/celeba_mini", help="CelebA root or a folder of images")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--crop", type=int, default=148)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--modes", default="exact,draft", help="comma-separated: exact, draft")
    return p.parse_args()


def time_build(ds, size: int, crop: int, draft: bool, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="facevae-cache-bench-") as tmp:
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        arr = cached_images(ds, size, crop, draft, cache_dir=Path(tmp), workers=workers, progress=False)
        seconds = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        assert arr.shape[0] == len(ds)
        del arr
    ips = len(ds) / seconds
    # CPU time of this process and its (reaped) workers: a per-core rate that a busy machine does not skew
    return {"images": len(ds), "seconds": round(seconds, 2), "images_per_s": round(ips, 1),
            "full_celeba_minutes": round(FULL_CELEBA / ips / 60, 1),
            "cpu_seconds": round(cpu, 2), "images_per_cpu_s": round(len(ds) / cpu, 1)}


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    args = parse_args()
    ds = open_dataset(args.data)
    results = {mode: time_build(ds, args.size, args.crop, mode == "draft", args.workers)
               for mode in args.modes.split(",")}
    print(json.dumps({"benchmark": "cache_build", "size": args.size, "crop": args.crop, "workers": args.workers,
                      "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                      "load_average_1min": round(os.getloadavg()[0], 2),
                      "modes": results}, indent=1))


if __name__ == "__main__":
    main()
