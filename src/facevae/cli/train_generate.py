"""`facevae train`, `sample` and `reconstruct`: train a model, then generate from it; options the other commands share."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from facevae.cli.app import app
from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.io import check_writable
from facevae.modelfiles import BUNDLED, BUNDLED_NAMES

CkptOpt = typer.Option(None, "--ckpt", help="Run folder, .safetensors weights, exported Hub folder, Hub repo id or "
                       f"bundled name ({', '.join(BUNDLED_NAMES)}); default: the bundled {BUNDLED} model.")
ModelOpt = typer.Option(None, "--model", metavar="NAME", help="A model shipped with facevae, by name: "
                        f"{', '.join(BUNDLED_NAMES)} (default {BUNDLED}). Instead of --ckpt.")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu or cuda.")
DecoderOpt = typer.Option("auto", "--decoder", help="sharp (fine-tuned for sharp faces), likelihood (the model's "
                          "own) or auto: sharp where the model has one.")
AlignOpt = typer.Option(None, "--align/--no-align", help="Move the face in each --images photo onto the CelebA "
                        "template first (needs facevae[align]); default: align when it is installed. Faces from "
                        "--data are aligned already.")
FaceOpt = typer.Option(None, "--face", min=0, metavar="K", help="The face to align in each --images photo, "
                       "numbered from 0, the largest (default 0).")


def model_source(ckpt: Optional[Path], model: Optional[str]) -> Optional[Path]:
    """What to load: --ckpt as given, or the weights of the bundled model --model names (never a local path)."""
    if model is None:
        return ckpt
    if ckpt is not None:
        raise FacevaeError(f"give --ckpt or --model, not both (--ckpt {ckpt}, --model {model})")
    from facevae.modelfiles.checkpoint import installed_bundle

    return installed_bundle(model)  # an unknown name: one line listing the bundled names


def build_config(config: Optional[Path], sets: list[str], epochs: Optional[int], max_steps: Optional[int],
                 base: RunConfig | None = None) -> RunConfig:
    cfg = RunConfig.load(config) if config else (base or RunConfig())
    extra = list(sets)
    if epochs is not None:
        extra.append(f"train.epochs={epochs}")
    if max_steps is not None:
        extra.append(f"train.max_steps={max_steps}")
    return cfg.override(extra) if extra else cfg


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="CelebA root (holding img_align_celeba/) or a folder of face images."),
    out: Path = typer.Option(..., "--out", help="Run folder for config, checkpoints, logs and pictures."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config file (sections data, model, loss, train)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set model.latent_dim=64 (repeatable)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs to train (train.epochs)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    device: str = DeviceOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Start afresh in an --out that holds a run, replacing its checkpoints and logs."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a VAE (or a plain autoencoder: --set model.kind=ae) on CelebA."""
    from facevae.training.launch import train_maybe_distributed
    from facevae.training.run import check_resume, saved_config

    # a resumed run starts from its own saved config; --set/--epochs/--max-steps still apply
    base = saved_config(out) if resume and not config else None
    cfg = build_config(config, set_, epochs, max_steps, base=base)
    if resume:
        check_resume(out, cfg)
    result = train_maybe_distributed(data, out, cfg, resume=resume, overwrite=overwrite, device=device,
                                     progress=progress)
    if result is not None:
        typer.echo(f"trained to step {result.step} ({result.skipped_steps} skipped); last losses "
                   + ", ".join(f"{k} {v:.2f}" for k, v in result.last.items()) + f"; run folder {out}")


@app.command()
def sample(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    n: int = typer.Option(64, "--n", min=1, max=100_000, help="Number of faces."),
    out: Path = typer.Option(Path("samples.png"), "--out", help="Grid PNG to write."),
    seed: int = typer.Option(0, "--seed"),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="Scale of the latent noise."),
    sampler: str = typer.Option("prior", "--sampler",
                                help="prior, gaussian, gmm, two_stage or diffusion (fitted to the training latents), "
                                     "or shifted (the prior moved by +0.5 in every dimension)."),
    components: int = typer.Option(10, "--components", min=1, help="GMM components (--sampler gmm)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data to fit a sampler on, when none is stored yet."),
    device: str = DeviceOpt,
    decoder: str = DecoderOpt,
) -> None:
    """Generate new faces and write them as a grid PNG."""
    from facevae.api import load
    from facevae.viz.grid import save_grid

    source = model_source(ckpt, model)  # a bad name is refused before --out is made
    check_out_file(out)
    vae = load(source, device=device, data=data, decoder=decoder)
    check_grid_size(n, vae.image_size)
    save_grid(vae.sample(n, sampler=sampler, temperature=temperature, seed=seed, components=components), out)
    typer.echo(f"wrote {n} face{'s' if n != 1 else ''} to {out}")


@app.command()
def reconstruct(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    images: List[Path] = typer.Option([], "--images", metavar="FILE", help="Image files to reconstruct (repeatable)."),
    data: Optional[Path] = typer.Option(None, "--data", help="CelebA root to take images from."),
    split: str = typer.Option("valid", "--split", help="train, valid or test (with --data)."),
    n: int = typer.Option(8, "--n", min=1, max=1024, help="Images to take from --data."),
    out: Path = typer.Option(Path("reconstructions.png"), "--out", help="PNG: originals above reconstructions."),
    device: str = DeviceOpt,
    decoder: str = DecoderOpt,
    align: Optional[bool] = AlignOpt,
    face: Optional[int] = FaceOpt,
) -> None:
    """Reconstruct faces: originals above their reconstructions."""
    from facevae.api import load
    from facevae.tasks.generate import reconstruct as run_reconstruct
    from facevae.viz.grid import pairs_grid, save_image

    if bool(images) == bool(data):
        raise FacevaeError("give either --images FILE ... or --data DIR (with --split), not both or neither")
    source = model_source(ckpt, model)  # a bad name is refused before --out is made
    check_out_file(out)
    vae = load(source, device=device, decoder=decoder)
    originals, recons = run_reconstruct(vae, images=images, data=data, split=split, n=n, align=align, face=face)
    save_image(pairs_grid(originals, recons), out)
    k = len(originals)
    typer.echo(f"wrote {k} reconstruction{'s' if k != 1 else ''} (originals above) to {out}")


# one grid PNG of at most 4096 faces of 64x64 (a 4096x4096 image): the faces, held as floats
# while they are drawn, then take about 200 MB whatever the image size
MAX_GRID_PIXELS = 4096 * 64 * 64


def check_grid_size(n: int, size: int) -> None:
    if n * size * size > MAX_GRID_PIXELS:
        limit = MAX_GRID_PIXELS // (size * size)
        raise FacevaeError(f"--n {n} faces of {size}x{size} are too many for one grid (at most {limit}): "
                           f"use --n {limit} or less, and another --seed for more faces")


def check_out_file(out: Path) -> None:
    if out.is_dir():
        raise FacevaeError(f"--out {out} is a folder: give a file name such as {out / 'grid.png'}")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise FacevaeError(f"--out {out} must end in .png, .jpg or .webp")
    check_writable(out)
