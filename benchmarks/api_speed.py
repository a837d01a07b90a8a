"""Figures for the one-object API on this machine: load, sample(64), the first GMM sample; prints JSON.

    python benchmarks/api_speed.py [--ckpt SOURCE] [--repeats 7] [--threads N]

- load_cold_s: the first `facevae.load()` in this process (imports of the model code included);
  load_warm_s: the median of later loads (what a notebook pays to reload: read, hash, build).
- sample64_s: the median of `vae.sample(64)` on a loaded model (prior; decode included).
- first_gmm_s: the first `sample(64, sampler="gmm")` on a fresh object, which reads the
  stored fit; `gmm_refitted` says whether it fitted instead (it must not: a fit says so on stderr).
Targets (issue 23): load warm <= 1 s, sample(64) <= 0.3 s on the 2-core CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import time


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="any source facevae.load takes (default: the bundled model)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    a = ap.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    import facevae

    cold, vae = timed(lambda: facevae.load(a.ckpt, device="cpu"))
    warm = [timed(lambda: facevae.load(a.ckpt, device="cpu"))[0] for _ in range(a.repeats)]
    vae.sample(64, seed=0)  # the first call pays for one-off kernel set-up
    sample = [timed(lambda: vae.sample(64, seed=0))[0] for _ in range(a.repeats)]
    fresh = facevae.load(a.ckpt, device="cpu")
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        first_gmm, _ = timed(lambda: fresh.sample(64, sampler="gmm", seed=0))
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "model": repr(vae),
        "load_cold_s": round(cold, 3), "load_warm_s": round(statistics.median(warm), 3),
        "sample64_s": round(statistics.median(sample), 3), "sample64_min_s": round(min(sample), 3),
        "first_gmm_s": round(first_gmm, 3), "gmm_refitted": "fitting" in said.getvalue(),
    }, indent=2))


if __name__ == "__main__":
    main()
