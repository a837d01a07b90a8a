"""Training throughput (images/s) of the facevae trainer against a typical PyTorch VAE loop; prints JSON.

Modes, all on the same model (same initial weights) and batch in one run:
  facevae      Trainer.train_step on the uint8 cache placed by place_images (on the GPU
               when it fits), flips on the device, channels_last, bf16 autocast (CUDA,
               or a CPU with native bf16), fused Adam and no host sync per step on CUDA.
  facevae_fit  the whole Trainer.fit loop around it (EMA on, a log line every 25 steps,
               a checkpoint every 500): the rate it logs, first window excluded.
  naive        what typical GitHub VAE projects do: a torch DataLoader over a Dataset
               that opens and decodes the JPEG with PIL for every item, crops and
               resizes it, fp32 eager, default Adam, loss.item() every step.
  ceiling      forward + backward + optimizer step on device-resident random data
               (bf16, channels_last, torch.compile, fused Adam on CUDA): what the GPU does
               with no data pipeline at all. On CPU it runs eager unless --compile, in
               bf16 where the CPU has native bf16 (as the trainer does), else fp32.
Warm-up steps are excluded from every timing (and compile time with them).

    python benchmarks/throughput.py --data ../shared/celeba_mini --device cpu --steps 30
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facevae.config import RunConfig
from facevae.data import BatchLoader, load_images, open_dataset, place_images
from facevae.losses import vae_loss
from facevae.models import build_model
from facevae.modelfiles.device import resolve_device
from facevae.training.options import PRECISIONS
from facevae.training.precision_policy import autocast_dtype
from facevae.training.trainer import Trainer


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/celeba_mini")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compile happens here)")
    p.add_argument("--modes", default="facevae,naive,ceiling")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="naive DataLoader workers")
    p.add_argument("--compile", action="store_true", help="torch.compile the facevae and ceiling models (default: CUDA only)")
    p.add_argument("--set", dest="sets", action="append", default=[], help="config override, e.g. model.image_size=128")
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(steps_iter, device: torch.device, warmup: int, steps: int, batch: int) -> dict:
    """Run warmup + steps iterations of `steps_iter` (a generator doing one step per next())."""
    for _ in range(warmup):
        next(steps_iter)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(steps_iter)
    sync(device)
    seconds = time.perf_counter() - t0
    return {"images_per_s": round(steps * batch / seconds, 1), "steps": steps, "seconds": round(seconds, 2)}


# ---- facevae ---------------------------------------------------------------------------------

def facevae_trainer(cfg: RunConfig, model, images: np.ndarray, idx: np.ndarray, device, run_dir: Path,
                    compile_model: bool) -> Trainer:
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    placed, rows = place_images(images, device, indices=idx)
    loader = BatchLoader(placed, cfg.train.batch_size, device, flip=cfg.data.flip, seed=cfg.train.seed, rows=rows)
    train_model = torch.compile(model) if compile_model else None
    return Trainer(cfg, model, loader, torch.from_numpy(images[idx[:64]]), run_dir, device,
                   train_model=train_model, progress=False)


def facevae_steps(trainer: Trainer):
    trainer.train_model.train()
    epoch = 0
    while True:
        for x in trainer.loader.epoch(epoch):
            trainer.train_step(x)
            trainer.step += 1
            yield
        epoch += 1


def facevae_fit(cfg: RunConfig, model, images, idx, device, run_dir: Path, args) -> dict:
    every = 25 if args.steps >= 50 else max(1, args.steps // 4)
    cfg = cfg.override([f"train.max_steps={args.warmup + args.steps}", "train.ema_decay=0.999",
                        f"train.log_every={every}", "train.ckpt_every=500", "train.val_batches=1"])
    trainer = facevae_trainer(cfg, model, images, idx, device, run_dir, args.compile or device.type == "cuda")
    trainer.fit()
    rates = [r["images_per_s"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "step"][1:]
    return {"images_per_s": round(float(np.mean(rates)), 1) if rates else None, "log_windows": len(rates),
            "log_every": every}


# ---- naive ---------------------------------------------------------------------------------

class JpegFaces(torch.utils.data.Dataset):
    """Decode, center-crop, resize and flip one JPEG per item, as most VAE repositories do."""

    def __init__(self, paths: list[Path], size: int, crop: int):
        self.paths, self.size, self.crop = paths, size, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as img:
            img = img.convert("RGB")
            w, h = img.size
            left, top = (w - self.crop) // 2, (h - self.crop) // 2
            img = img.crop((left, top, left + self.crop, top + self.crop)).resize((self.size, self.size), Image.BICUBIC)
            if torch.rand(()) < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


def naive_steps(cfg: RunConfig, model, paths, device, workers: int):
    data = torch.utils.data.DataLoader(JpegFaces(paths, cfg.model.image_size, cfg.data.crop),
                                       batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                                       num_workers=workers, pin_memory=device.type == "cuda",
                                       persistent_workers=workers > 0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    model.train()
    running = 0.0
    while True:
        for x in data:
            x = x.to(device)
            loss = vae_loss(x, model(x), cfg=cfg.loss).total
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()  # the usual per-step host sync
            yield


# ---- ceiling -------------------------------------------------------------------------------

def ceiling_steps(cfg: RunConfig, model, device, compile_model: bool, *, nhwc: bool = True,
                  bf16: bool | None = None):
    """bf16 None: bf16 wherever the trainer would use it (see autocast_dtype)."""
    bf16 = autocast_dtype("bf16", device) is not None if bf16 is None else bf16
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    model = model.to(memory_format=fmt)
    run = torch.compile(model) if compile_model else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, fused=device.type == "cuda")
    s = cfg.model.image_size
    x = torch.rand(cfg.train.batch_size, 3, s, s, device=device).contiguous(memory_format=fmt)
    model.train()
    while True:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = run(x)
        loss = vae_loss(x, out, cfg=cfg.loss).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield


def precision_name(dtype: torch.dtype | None) -> str:
    return {d: name for name, d in PRECISIONS.items()}[dtype]


# ---- main ----------------------------------------------------------------------------------

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    cfg = RunConfig().override([f"train.batch_size={args.batch}", *args.sets])
    compile_model = args.compile or device.type == "cuda"
    torch.manual_seed(0)
    initial = build_model(cfg.model).to(device)
    ds = open_dataset(args.data)
    idx = ds.split_indices("train")
    results = {}
    with tempfile.TemporaryDirectory(prefix="facevae-throughput-") as tmp:
        for mode in args.modes.split(","):
            model = copy.deepcopy(initial)
            if mode in ("facevae", "facevae_fit"):
                images = load_images(ds, cfg, progress=False)
                if mode == "facevae":
                    trainer = facevae_trainer(cfg, model, images, idx, device, Path(tmp) / mode, compile_model)
                    results[mode] = timed(facevae_steps(trainer), device, args.warmup, args.steps, args.batch)
                    results[mode].update(precision=precision_name(trainer.autocast_dtype),
                                         compiled=compile_model, sync_free=trainer.sync_free)
                else:
                    results[mode] = facevae_fit(cfg, model, images, idx, device, Path(tmp) / mode, args)
            elif mode == "naive":
                steps = naive_steps(cfg, model, ds.paths(idx), device, args.workers)
                results[mode] = timed(steps, device, args.warmup, args.steps, args.batch)
                results[mode].update(precision="fp32", compiled=False, loader_workers=args.workers)
            elif mode == "ceiling":
                steps = ceiling_steps(cfg, model, device, compile_model)
                results[mode] = timed(steps, device, args.warmup, args.steps, args.batch)
                results[mode].update(precision=precision_name(autocast_dtype("bf16", device)), compiled=compile_model)
            else:
                raise SystemExit(f"unknown mode {mode!r}: use facevae, facevae_fit, naive, ceiling")
    out = {"benchmark": "throughput", "device": device_name(device), "device_type": device.type,
           "batch": args.batch, "image_size": cfg.model.image_size, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "load_average_1min": round(os.getloadavg()[0], 2), "modes": results}
    if "naive" in results and "facevae" in results:
        out["facevae_vs_naive"] = round(results["facevae"]["images_per_s"] / results["naive"]["images_per_s"], 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
