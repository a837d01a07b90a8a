"""A bare training step of the default model on CPU in each memory format and precision; prints JSON.

Why facevae trains with channels_last and (where the CPU has native bf16) bf16
autocast on CPU: this prints images/s for fp32/bf16 x NCHW/NHWC, eager, and with
--compile the two NHWC variants compiled. Same weights and batch for every variant.

    python benchmarks/cpu_step.py --batch 64 --steps 12
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from facevae.config import RunConfig
from facevae.losses import vae_loss
from facevae.models import build_model
from facevae.training.trainer import native_cpu_bf16


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--set", dest="sets", action="append", default=[])
    return p.parse_args()


def rate(cfg: RunConfig, base, x, nhwc: bool, bf16: bool, compiled: bool, warmup: int, steps: int) -> float:
    model = copy.deepcopy(base)
    if nhwc:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    run = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = run(x)
        loss = vae_loss(x, out, cfg=cfg.loss).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return round(steps * len(x) / (time.perf_counter() - start), 1)


def main() -> None:
    args = parse_args()
    cfg = RunConfig().override(args.sets)
    torch.manual_seed(0)
    base = build_model(cfg.model)
    s = cfg.model.image_size
    x = torch.rand(args.batch, 3, s, s)
    variants = [(False, False, False), (True, False, False), (False, True, False), (True, True, False)]
    if args.compile:
        variants += [(True, False, True), (True, True, True)]
    out = {}
    for nhwc, bf16, compiled in variants:
        name = f"{'bf16' if bf16 else 'fp32'}_{'nhwc' if nhwc else 'nchw'}{'_compiled' if compiled else ''}"
        out[name] = rate(cfg, base, x, nhwc, bf16, compiled, args.warmup, args.steps)
    print(json.dumps({"benchmark": "cpu_step", "images_per_s": out, "batch": args.batch, "image_size": s,
                      "native_bf16": native_cpu_bf16(), "capability": torch.backends.cpu.get_cpu_capability(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    main()
