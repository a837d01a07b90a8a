"""A bare training step of the default model on CPU in each memory format and precision; prints JSON.

Why facevae trains with channels_last and (where the CPU has native bf16) bf16
autocast on CPU: this prints images/s for fp32/bf16 x NCHW/NHWC, eager, and with
--compile the two NHWC variants compiled. Each variant is the throughput benchmark's
ceiling step (same weights, batch and loss) with its format and precision forced.

    python benchmarks/cpu_step.py --batch 64 --steps 12
"""
from __future__ import annotations

import argparse
import copy
import json

import torch

from facevae.config import RunConfig
from facevae.models import build_model
from facevae.training.precision_policy import native_cpu_bf16
from throughput import ceiling_steps, timed  # noqa: E402  (benchmarks/ is the script's folder)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--set", dest="sets", action="append", default=[])
    return p.parse_args()


def main() -> None:
    args = parse_args()
    cfg = RunConfig().override([f"train.batch_size={args.batch}", *args.sets])
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    base = build_model(cfg.model)
    variants = [(False, False, False), (True, False, False), (False, True, False), (True, True, False)]
    if args.compile:
        variants += [(True, False, True), (True, True, True)]
    out = {}
    for nhwc, bf16, compiled in variants:
        name = f"{'bf16' if bf16 else 'fp32'}_{'nhwc' if nhwc else 'nchw'}{'_compiled' if compiled else ''}"
        steps = ceiling_steps(cfg, copy.deepcopy(base), cpu, compiled, nhwc=nhwc, bf16=bf16)
        out[name] = timed(steps, cpu, args.warmup, args.steps, args.batch)["images_per_s"]
    print(json.dumps({"benchmark": "cpu_step", "images_per_s": out, "batch": args.batch,
                      "image_size": cfg.model.image_size, "native_bf16": native_cpu_bf16(),
                      "capability": torch.backends.cpu.get_cpu_capability(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    main()
