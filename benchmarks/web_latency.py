"""Latency of each `facevae serve` interaction, calling the page's handler functions directly; prints JSON.

Each handler runs `--repeats` times after a few warm-up calls; the JSON gives the
median and 95th percentile in milliseconds per interaction. Browser and network
time are not included (Gradio adds a PNG encode per image shown).

Without --ckpt it times the bundled model, or, while that is missing, a randomly
initialised model of the same architecture (64 px, 128-dim latent): timing does
not depend on training. Without cached attribute vectors it uses 40 random
directions, so a slider move costs exactly what it would with real ones.

    python benchmarks/web_latency.py --threads 1 --repeats 50
    python benchmarks/web_latency.py --ckpt runs/bundle --data ../shared/celeba_mini
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.models import build_model
from facevae.modelfiles.checkpoint import bundled_weights
from facevae.api import FaceVAE
from facevae.web.explorer import Explorer
from facevae.web.handlers import Handlers


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default=None, help="run folder or weights; default: the bundled model (or a random one)")
    p.add_argument("--data", default=None, help="CelebA folder for attribute vectors and the upload photo")
    p.add_argument("--threads", type=int, default=1, help="torch threads, as `facevae serve --threads`")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--faces", type=int, default=12, help="faces per random grid, as `facevae serve --faces`")
    p.add_argument("--steps", type=int, default=8, help="interpolation steps")
    return p.parse_args()


def make_explorer(args) -> tuple[Explorer, str]:
    quiet = lambda msg: None  # noqa: E731
    if args.ckpt or bundled_weights().is_file():
        ex = Explorer.load(args.ckpt, data=args.data, device="cpu", log=quiet)
        what = args.ckpt or "bundled"
    else:
        torch.manual_seed(0)
        cfg = RunConfig()
        ex = Explorer(FaceVAE.from_model(build_model(cfg.model), cfg))
        what = "random init, default architecture (bundled model not present)"
    if not ex.attr_names:
        g = torch.Generator().manual_seed(0)
        ex = Explorer(ex.vae, [f"attr{i}" for i in range(40)],
                      torch.randn(40, ex.latent_dim, generator=g) * 0.3, samplers=ex.samplers)
        what += "; random attribute directions"
    return ex, what


def photo(data: str | None) -> bytes:
    """A face photo's bytes: the first CelebA image when --data is given, else a synthetic 178x218 JPEG."""
    if data:
        from facevae.data import open_dataset

        ds = open_dataset(data)
        return ds.paths([0])[0].read_bytes()
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def timed(fn, repeats: int, warmup: int = 3) -> dict:
    for i in range(warmup):
        fn(i)
    ms = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        ms.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "max_ms": round(max(ms), 2), "n": repeats}


def rejected(h: Handlers, state) -> None:
    try:
        h.upload(b"not an image, whatever the file name says\n" * 50, state)
    except FacevaeError:
        return
    raise AssertionError("a text upload was accepted")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    ex, what = make_explorer(args)
    with tempfile.TemporaryDirectory() as gif_dir:
        h = Handlers(ex, n_faces=args.faces, gif_dir=gif_dir)
        state = h.start("prior", 1.0, 0, args.steps, "slerp")[1]
        rng = np.random.default_rng(0)
        values = [list(rng.uniform(-2, 2, ex.n_sliders)) for _ in range(16)]
        jpeg = photo(args.data)
        cases = {
            "page_load": lambda i: h.start("prior", 1.0, i, args.steps, "slerp"),
            "new_faces": lambda i: h.new_faces("prior", 0.8, i, state),
            "choose_face": lambda i: h.choose(state, i % args.faces),
            "slider_move": lambda i: h.edit(state, *values[i % len(values)]),
            # what the page does: the edited face also written as a named PNG for its download
            "slider_move_named_png": lambda i: h.named_png(h.edit(state, *values[i % len(values)]),
                                                           h.edit_name(values[i % len(values)])),
            "reset_sliders": lambda i: h.reset(state),
            "upload_photo": lambda i: h.upload(jpeg, state),
            "upload_rejected": lambda i: rejected(h, state),
            "set_interpolation_end": lambda i: h.set_end("b", state, *values[i % len(values)]),
            "interpolate": lambda i: h.interpolate(state, args.steps, "slerp"),
        }
        results = {name: timed(fn, args.repeats) for name, fn in cases.items()}
    print(json.dumps({
        "model": what, "image_size": ex.image_size, "latent_dim": ex.latent_dim, "faces_per_grid": args.faces,
        "interpolation_steps": args.steps, "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or
        platform.machine(), "interactions": results,
    }, indent=2))


if __name__ == "__main__":
    main()
