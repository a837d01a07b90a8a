"""Seconds per fine-tuning step of the sharp decoder, per loss setting, on this machine; prints a table.

    python benchmarks/sharp_step.py [--steps 12] [--batch 64]

The bundled model's decoder on random codes and images (the step's cost does not depend on
the pixels). Each row is one change from the row above, so the table shows what each
costs: the pixel term alone, MS-SSIM, the frequency term, the adversarial term done
naively (adaptive weight every step, three-layer discriminator, fp32), then the weight
every 8 steps, a smaller discriminator, and bf16 autocast where the CPU runs it natively.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import facevae
from facevae.training.finetune import SharpTrainer
from facevae.training.precision_policy import native_cpu_bf16

ROWS = [
    ("pixel (L1), fp32", ["train.precision=fp32"]),
    ("+ MS-SSIM", ["train.precision=fp32", "sharp.msssim_weight=1"]),
    ("+ focal frequency", ["train.precision=fp32", "sharp.freq_weight=10"]),
    ("L1 + adversarial, naive: adaptive weight every step, D 64-128-256",
     ["train.precision=fp32", "sharp.adv_weight=0.5", "sharp.adaptive_every=1"]),
    ("  adaptive weight every 8 steps", ["train.precision=fp32", "sharp.adv_weight=0.5", "sharp.adaptive_every=8"]),
    ("  and D 32-64-128", ["train.precision=fp32", "sharp.adv_weight=0.5", "sharp.disc_widths=[32,64,128]"]),
    ("  and bf16 autocast", ["train.precision=bf16", "sharp.adv_weight=0.5", "sharp.disc_widths=[32,64,128]"]),
    ("pixel (L1), bf16", ["train.precision=bf16"]),
]


def seconds_per_step(cfg, decoder, steps: int, batch: int) -> float:
    trainer = SharpTrainer(cfg, decoder)
    g = torch.Generator().manual_seed(0)
    z, real = torch.randn(batch, cfg.model.latent_dim, generator=g), torch.rand(batch, 3, 64, 64, generator=g)
    for _ in range(2):  # warm-up: allocator and oneDNN kernel choice
        trainer.train_step(z, real)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_step(z, real)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    import copy

    vae = facevae.load(device="cpu", decoder="likelihood")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native CPU bf16: {native_cpu_bf16()}, "
          f"batch {a.batch}, median of {a.steps} steps")
    print("| setting | s/step | x pixel fp32 |")
    print("|---|---|---|")
    base = None
    for name, sets in ROWS:
        t = seconds_per_step(vae.config.override(sets), copy.deepcopy(vae.model.decoder), a.steps, a.batch)
        base = base or t
        print(f"| {name} | {t:.3f} | {t / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
