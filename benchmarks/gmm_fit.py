"""Time GMMSampler.fit on synthetic 200,000 x 128 latents; prints one JSON line.

The latents come from a seeded random mixture (random means, random full
covariances) so EM has real structure to find; --separation scales the spread
of the true means relative to the within-component spread (smaller = more
overlap = more EM iterations).

    python benchmarks/gmm_fit.py --k 10 --device cpu
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from facevae.sampling import GMMSampler


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--k", type=int, default=10, help="components fitted (and in the true mixture)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="float32", choices=["float32", "float64"])
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--separation", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def random_mixture(n: int, d: int, k: int, separation: float, seed: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    means = separation * torch.randn(k, d, generator=g)
    factors = torch.randn(k, d, d, generator=g) / d**0.5  # covariance A A^T: eigenvalues spread over (0, 4)
    comp = torch.multinomial(torch.rand(k, generator=g) + 0.5, n, replacement=True, generator=g)
    eps = torch.randn(n, d, generator=g)
    z = torch.empty(n, d)
    for j in range(k):
        rows = comp == j
        z[rows] = means[j] + eps[rows] @ factors[j].mT
    return z.to(device)


def main() -> None:
    args = parse_args()
    latents = random_mixture(args.n, args.d, args.k, args.separation, args.seed, args.device)
    sampler = GMMSampler(components=args.k, iters=args.iters, tol=args.tol, seed=args.seed,
                         precision=args.precision)
    if latents.device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    sampler.fit(latents)
    if latents.device.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({
        # cpu_seconds (all threads) shows how much of the wall time other processes took on a shared box
        "fit_seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
        "iterations": sampler.n_iter, "converged": sampler.converged,
        "mean_log_likelihood": round(sampler.mean_log_likelihood, 4),
        "n": args.n, "d": args.d, "k": args.k, "device": str(latents.device), "precision": args.precision,
        "separation": args.separation, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
