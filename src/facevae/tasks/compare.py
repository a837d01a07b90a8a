"""A plain autoencoder against a VAE: same architecture and budget, one figure side by side.

Each model's panel shows reconstructions, decodes of z ~ N(0, I) and decodes of
z from a Gaussian mixture fitted to its training posterior means. The autoencoder
reconstructs well but its codes do not fill N(0, I), so prior samples fail;
the fitted mixture rescues it, and the VAE works either way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.models.forward import batched
from facevae.models.vae import VAE
from facevae.phase import fit_line, phase

KINDS = {"VAE": "vae", "AE": "ae"}  # figure column -> model.kind and run sub-folder
ROW_TITLES = {
    "recon": "reconstructions\n(originals above)",
    "prior": "samples, z ~ N(0, I)",
    "gmm": "samples, z ~ GMM fitted\nto the training E[z|x]",
}


@dataclass
class CompareContext:
    """What an evaluation hook may look at for one trained model."""

    name: str
    model: VAE
    cfg: RunConfig
    run_dir: Path
    valid: torch.Tensor  # uint8 (N, 3, H, W) validation images
    train_means: torch.Tensor  # (N, D) posterior means of the training images
    samples: dict[str, torch.Tensor] = field(default_factory=dict)  # row -> decoded float images
    device: torch.device = torch.device("cpu")


@torch.no_grad()
def recon_mse(ctx: CompareContext) -> float:
    """Mean squared error per pixel (images in [0, 1]) of the validation reconstructions."""
    x = ctx.valid[:512].float().div(255)
    recon = batched(lambda b: ctx.model(b, sample=False).recon.float(), x, ctx.device)
    return float((recon - x).pow(2).mean())


# Evaluation hook: numbers shown under each model's title and written to compare.json.
# Add an entry (e.g. FID of the prior and GMM samples) as name -> fn(CompareContext) -> float.
COMPARE_METRICS: dict[str, Callable[[CompareContext], float]] = {
    "recon MSE": recon_mse,
}


def compare_configs(cfg: RunConfig) -> dict[str, RunConfig]:
    """The same config with model.kind set per column, so only the objective differs."""
    return {name: cfg.override([f"model.kind={kind}"]) for name, kind in KINDS.items()}


def train_pair(data: str | Path, out: Path, cfg: RunConfig, *, reuse: bool = False, device: str = "auto",
               progress: bool = True) -> dict[str, Path]:
    """Train (or, with reuse, keep) OUT/vae and OUT/ae; return column -> run folder."""
    from facevae.modelfiles.checkpoint import CHECKPOINT, WEIGHTS
    from facevae.training.run import train

    runs = {}
    for name, run_cfg in compare_configs(cfg).items():
        run_dir = out / KINDS[name]
        if reuse and (run_dir / WEIGHTS).is_file():
            if progress:
                print(f"{name}: reusing the trained model in {run_dir}")
        elif (run_dir / CHECKPOINT).exists():
            raise FacevaeError(f"{run_dir} already holds a trained model: pass --reuse to draw it again, "
                               "or choose another --out")
        else:
            if progress:
                print(f"{name}: training into {run_dir}")
            # no checkpoint there: whatever a killed earlier attempt left is replaced
            train(data, run_dir, run_cfg, overwrite=True, device=device, progress=progress)
        runs[name] = run_dir
    return runs


@torch.no_grad()
def compare_panels(data: str | Path, runs: dict[str, Path], *, n: int = 16, components: int = 10, seed: int = 0,
                   device: str = "auto", progress: bool = True) -> tuple[dict, dict]:
    """(panels[column][row] uint8 grids, metrics[column][name])."""
    from facevae.data import load_images, open_dataset
    from facevae.api import load
    from facevae.data.encode import encode_images
    from facevae.modelfiles.device import resolve_device
    from facevae.sampling import build_sampler
    from facevae.viz.grid import pairs_grid
    from facevae.viz.latent_plots import face_grid

    dev = resolve_device(device)
    ds = open_dataset(data)
    panels, metrics = {}, {}
    per_row = n // 2 if n > 1 else 1
    for name, run_dir in runs.items():
        vae = load(run_dir, device=str(dev))
        model, cfg = vae.model, vae.config
        images = load_images(ds, cfg, progress=progress)
        valid = torch.from_numpy(images[ds.split_indices("valid")])
        train_images = torch.from_numpy(images[ds.split_indices("train")])
        with phase(f"{name}: encoding {len(train_images):,} training images", progress):
            means, _ = encode_images(model, train_images, dev)
        ctx = CompareContext(name, model, cfg, run_dir, valid, means, device=dev)
        samplers = {"prior": build_sampler("prior", cfg.model.latent_dim),
                    "gmm": build_sampler("gmm", cfg.model.latent_dim, components=components)}
        for row, sampler in samplers.items():
            with phase(f"{name}: {fit_line(sampler, len(means))}", progress and row != "prior"):
                sampler.fit(means)
            # one seed for both columns: the same noise through each model
            z = sampler.sample(n, generator=torch.Generator().manual_seed(seed))
            ctx.samples[row] = vae.decode(z)
        x = valid[:per_row].float().div(255)
        recon = vae.reconstruct(x)
        panels[name] = {"recon": pairs_grid(x, recon, per_row=per_row),
                        **{row: face_grid(img, nrow=per_row) for row, img in ctx.samples.items()}}
        metrics[name] = {metric: fn(ctx) for metric, fn in COMPARE_METRICS.items()}
    return panels, metrics


def compare(data: str | Path, out: str | Path, cfg: RunConfig, *, reuse: bool = False, n: int = 16,
            components: int = 10, seed: int = 0, device: str = "auto", progress: bool = True) -> dict:
    """Train both models, write OUT/compare.png and OUT/compare.json; return the JSON."""
    from facevae.io import atomic_write_text
    from facevae.viz.latent_plots import compare_figure

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacevaeError(f"--out {out} is a file: give a folder (it gets vae/, ae/ and compare.png)")
    runs = train_pair(data, out, cfg, reuse=reuse, device=device, progress=progress)
    panels, metrics = compare_panels(data, runs, n=n, components=components, seed=seed, device=device,
                                     progress=progress)
    figure = compare_figure(panels, metrics, out / "compare.png", ROW_TITLES)
    report = {"runs": {k: str(v) for k, v in runs.items()}, "metrics": metrics, "figure": figure.name,
              "samples": n, "gmm_components": components, "seed": seed,
              "train": {"epochs": cfg.train.epochs, "max_steps": cfg.train.max_steps}}
    atomic_write_text(out / "compare.json", json.dumps(report, indent=1) + "\n")
    return report
