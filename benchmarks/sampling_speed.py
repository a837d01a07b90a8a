"""Time "fit a sampler, then make 10,000 faces" end to end; prints JSON.

Stages, each timed on its own (device synchronised between them):
  encode   posterior means of every training image (from the uint8 cache, which is
           built before the clock starts: a one-off cost measured by cache_build.py)
  fit      the sampler's fit on those means (GMM-10 by default, EM in torch)
  sample   --n latents from the fitted sampler
  decode   the latents to uint8 images on the host (what a user saves or scores)
The issue-5 target is encode-free: fit + sample + decode under 10 s on one GPU; the
total with encoding is printed too.

    python benchmarks/sampling_speed.py --data ../shared/celeba_mini --device cpu
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from facevae.data.encode import encode_images, load_split
from facevae.tasks.evaluate import decoded_batches
from facevae.sampling.registry import build_sampler
from facevae.modelfiles.checkpoint import load_model
from facevae.modelfiles.device import resolve_device


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default=None, help="checkpoint (default: the bundled celeba64 model)")
    p.add_argument("--data", default="../shared/celeba_mini")
    p.add_argument("--device", default="auto")
    p.add_argument("--n", type=int, default=10_000, help="faces generated")
    p.add_argument("--sampler", default="gmm")
    p.add_argument("--components", type=int, default=10)
    p.add_argument("--batch", type=int, default=500, help="decode batch")
    return p.parse_args()


class Clock:
    def __init__(self, device: torch.device):
        self.device, self.stages = device, {}

    def __call__(self, name: str, fn):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t = time.perf_counter()
        out = fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.stages[name] = round(time.perf_counter() - t, 3)
        return out


def decode_uint8(model, z: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    return torch.cat([x.cpu() for x in decoded_batches(model, z.split(batch), device)])


def main() -> None:
    args = parse_args()
    dev = resolve_device(args.device)
    loaded = load_model(args.ckpt, dev)
    model, cfg = loaded.model, loaded.config
    model.eval()
    _, _, images = load_split(args.data, "train", cfg, progress=False)
    options = {"components": args.components} if args.sampler == "gmm" else {}
    clock = Clock(dev)
    decode_uint8(model, torch.zeros(2, cfg.model.latent_dim, device=dev), 2, dev)  # first-call set-up, untimed
    means = clock("encode", lambda: encode_images(model, images, dev)[0].to(dev))
    sampler = clock("fit", lambda: build_sampler(args.sampler, cfg.model.latent_dim, **options).fit(means))
    gen = torch.Generator(dev).manual_seed(0)
    z = clock("sample", lambda: sampler.sample(args.n, generator=gen).to(dev))
    faces = clock("decode", lambda: decode_uint8(model, z, args.batch, dev))
    s = clock.stages
    print(json.dumps({
        "benchmark": "sampling_speed", "device": str(dev), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "sampler": args.sampler, "n_faces": len(faces),
        "train_images": len(images), "image_size": cfg.model.image_size, "seconds": s,
        "fit_iterations": getattr(sampler, "n_iter", None),
        "fit_sample_decode_s": round(s["fit"] + s["sample"] + s["decode"], 3),
        "total_with_encode_s": round(sum(s.values()), 3),
    }, indent=1))


if __name__ == "__main__":
    main()
