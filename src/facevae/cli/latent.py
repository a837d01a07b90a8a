"""latents, edit, interpolate, progress, compare: pictures of the latent space."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from facevae.cli.app import app
from facevae.cli.train_generate import (AlignOpt, CkptOpt, DecoderOpt, DeviceOpt, FaceOpt, ModelOpt, build_config,
                                        check_out_file, model_source)
from facevae.errors import FacevaeError
from facevae.io import check_writable

DataOpt = typer.Option(None, "--data", help="CelebA root (holding img_align_celeba/ and list_attr_celeba.txt).")


LATENTS_HELP = (
    "How the model uses its latent space: histograms, KL per dimension, active units, a PCA map.\n\n"
    "Writes latents_histograms.png (posterior means of the most and least active dimensions against N(0, 1)), "
    "latents_kl.png (KL and activity, the variance over images of each posterior mean, per dimension, sorted), "
    "latents_pca.png (the means on their first two principal components, coloured by --attribute) and "
    "latents.json (the numbers)."
)


@app.command(help=LATENTS_HELP)
def latents(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    data: Path = typer.Option(..., "--data", help="CelebA root (holding img_align_celeba/)."),
    split: str = typer.Option("valid", "--split", help="train, valid, test or all: the images to encode."),
    attribute: str = typer.Option("Smiling", "--attribute",
                                  help="CelebA attribute that colours the PCA plot ('' for none)."),
    threshold: float = typer.Option(0.01, "--threshold", min=0.0,
                                    help="A unit is active when the variance of its posterior mean over the "
                                         "images exceeds this (Burda et al. 2016)."),
    out: Path = typer.Option(..., "--out", help="Folder for latents_*.png and latents.json."),
    device: str = DeviceOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """How the model uses its latent space: histograms, KL per dimension, active units, a PCA map."""
    from facevae.api import load
    from facevae.metrics.latent_health import PER_IMAGE_KL
    from facevae.tasks.latents import latent_report

    source = model_source(ckpt, model)  # a bad name is refused before --out is made
    check_writable(out, folder=True)
    report = latent_report(load(source, device=device, decoder="likelihood"), data, out, split=split,
                           attribute=attribute or None, threshold=threshold, progress=progress)
    kl = (f", per-image KL {report['total_kl']:.1f} nats ({PER_IMAGE_KL})" if report["total_kl"] is not None
          else "")
    typer.echo(f"{report['active_units']} of {report['latent_dim']} latent units active{kl}; "
               f"wrote {', '.join(report['figures'].values())} and latents.json to {out}")


EDIT_HELP = (
    "Edit faces along CelebA attribute directions: rows are faces, columns are strengths.\n\n"
    "The direction of an attribute is the average posterior mean of the training faces that have it minus that "
    "of the faces that do not. It is normalised to unit length and scaled by the standard deviation of the "
    "training means along it, so strength 1 moves a face by one typical population spread along the attribute, "
    "+-3 reaches the edge of the data, and a strength means the same for every attribute.\n\n"
    "Column s shows decode(mu + s * sum_a w_a * step_a): several --attribute NAME=W combine into one edit that "
    "each strength scales as a whole. Strength 0 is the plain reconstruction."
)


@app.command(help=EDIT_HELP)
def edit(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    images: List[Path] = typer.Option([], "--images", metavar="FILE", help="Face image files to edit (repeatable)."),
    data: Optional[Path] = DataOpt,
    split: str = typer.Option("valid", "--split", help="Split to take faces from (with --data)."),
    n: int = typer.Option(8, "--n", min=1, max=256, help="Faces to take from --data."),
    attribute: List[str] = typer.Option(
        ..., "--attribute", metavar="NAME[=W]",
        help="CelebA attribute, optionally with a weight: Smiling or Smiling=1.5 (repeatable; the weighted "
             "attributes add up to one combined edit)."),
    strengths: str = typer.Option("-3,-1.5,0,1.5,3", "--strengths",
                                  help="Comma-separated strengths, one column each."),
    attr_data: Optional[Path] = typer.Option(
        None, "--attr-data",
        help="CelebA root whose training split defines the attribute vectors. Default: the vectors cached for the "
             "checkpoint (shipped with the bundled model), else computed once from --data and cached beside it."),
    originals: bool = typer.Option(True, "--originals/--no-originals", help="Show the input face as column one."),
    scale: int = typer.Option(1, "--scale", min=1, max=8, help="Enlarge the faces in the grid this many times."),
    out: Path = typer.Option(Path("edit.png"), "--out", help="Grid PNG to write."),
    device: str = DeviceOpt,
    decoder: str = DecoderOpt,
    align: Optional[bool] = AlignOpt,
    face: Optional[int] = FaceOpt,
) -> None:
    """Edit faces along CelebA attribute directions: rows are faces, columns are strengths."""
    from facevae.api import load
    from facevae.cli.parsing import parse_attribute_weights, parse_strengths
    from facevae.tasks.edit import edit_faces
    from facevae.viz.face_grids import edit_grid
    from facevae.viz.grid import save_image

    source = model_source(ckpt, model)  # a bad name is refused before --out is made
    check_out_file(out)
    weights = parse_attribute_weights(attribute)
    values = parse_strengths(strengths)
    vae = load(source, device=device, decoder=decoder)
    result = edit_faces(vae, weights, values, images=images, data=data, split=split, n=n, attr_data=attr_data,
                        align=align, face=face)
    save_image(edit_grid(result.faces, values, result.title, result.originals if originals else None, scale), out)
    typer.echo(f"wrote {_count(len(result.originals), 'face')} x {_count(len(values), 'strength')} to {out}")


@app.command()
def interpolate(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    images: List[Path] = typer.Option([], "--images", metavar="FILE", help="The two end faces: --images A.jpg B.jpg."),
    # the second face of `--images A.jpg B.jpg` arrives here: a two-value option would swallow the
    # next option when only one face is given, and click's message would not say what is wrong
    more_images: List[Path] = typer.Argument(None, hidden=True),
    seed: Optional[int] = typer.Option(None, "--seed", help="Join two random N(0, I) codes drawn with this seed."),
    pairs: int = typer.Option(1, "--pairs", min=1, max=64, help="Random pairs, one row each (with --seed)."),
    mode: str = typer.Option("slerp", "--mode", help="slerp (great circle, keeps the code length) or linear."),
    steps: int = typer.Option(8, "--steps", min=2, max=256, help="Faces along the path, ends included."),
    scale: int = typer.Option(1, "--scale", min=1, max=8, help="Enlarge the faces this many times."),
    out: Path = typer.Option(Path("interpolate.png"), "--out", help="Grid PNG: one row per pair."),
    gif: Optional[Path] = typer.Option(None, "--gif", help="Also write an animated GIF (ping-pong loop)."),
    fps: float = typer.Option(8.0, "--fps", min=0.1, max=50.0, help="GIF frames per second."),
    device: str = DeviceOpt,
    decoder: str = DecoderOpt,
    align: Optional[bool] = AlignOpt,
    face: Optional[int] = FaceOpt,
) -> None:
    """Walk between two faces (posterior means of two images) or two random codes, as a grid and a GIF."""
    from facevae.api import load
    from facevae.tasks.interpolate import interpolate_faces
    from facevae.viz.face_grids import interpolation_grid
    from facevae.viz.gif import pingpong, resize, save_gif
    from facevae.viz.grid import make_grid, save_image

    source = model_source(ckpt, model)  # a bad name is refused before --out is made
    check_out_file(out)
    if gif is not None:  # every output is checked before any is written
        if gif.suffix.lower() != ".gif":
            raise FacevaeError(f"--gif {gif} must end in .gif")
        check_writable(gif, "--gif")
    vae = load(source, device=device, decoder=decoder)
    faces, originals = interpolate_faces(vae, images=[*images, *(more_images or [])], seed=seed, pairs=pairs,
                                         mode=mode, steps=steps, align=align, face=face)
    save_image(interpolation_grid(faces, mode, originals, scale), out)
    written = [str(out)]
    if gif is not None:
        grids = [make_grid(f, nrow=len(f)) for f in faces]
        # faces under 128 px are too small to watch: doubled; 128 px ones are left as they are
        frames = [resize(g, g.shape[1] * max(scale, 2 if vae.image_size < 128 else 1)) for g in grids]
        # linger on both ends of the path: the faces being joined
        save_gif(pingpong(frames), gif, fps=fps, hold={0: 3, steps - 1: 3})
        written.append(f"{gif} ({2 * steps - 2} frames)")
    typer.echo(f"wrote {' and '.join(written)}")


@app.command()
def progress(
    run: Path = typer.Option(..., "--run", help="Run folder of `facevae train` (with recon/epoch_*.png)."),
    out: Path = typer.Option(Path("progress.gif"), "--out", help="GIF to write."),
    fps: float = typer.Option(2.0, "--fps", min=0.1, max=50.0, help="Frames (epochs) per second."),
    width: Optional[int] = typer.Option(None, "--width", min=64, max=4096, help="Resize frames to this width."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="At most this many epochs, evenly spaced, "
                                         "first and last included (default: every epoch)."),
) -> None:
    """An animated GIF of a run's per-epoch reconstruction grids, each captioned with its epoch."""
    from facevae.runfolder import RunFolder
    from facevae.viz.gif import progress_gif

    if out.suffix.lower() != ".gif" or out.is_dir():
        raise FacevaeError(f"--out {out} must be a file name ending in .gif")
    if not run.is_dir():
        raise FacevaeError(f"run folder {run} does not exist: pass the --out folder of `facevae train`")
    check_writable(out)
    epochs = progress_gif(RunFolder(run).recon_dir, out, fps=fps, width=width, frames=frames)
    plural = "s" if len(epochs) != 1 else ""
    typer.echo(f"wrote {len(epochs)} epoch{plural} ({epochs[0]} to {epochs[-1]}, numbered as in metrics.jsonl) to {out}")


COMPARE_HELP = (
    "Train a VAE and a plain autoencoder with the same architecture and budget; draw them side by side.\n\n"
    "Rows: reconstructions, samples from N(0, I), samples from a Gaussian mixture fitted to each model's "
    "training posterior means. model.kind is set per model (OUT/vae, OUT/ae); every other setting comes from "
    "--config, --set, --epochs and --max-steps."
)


@app.command(help=COMPARE_HELP)
def compare(
    data: Path = typer.Option(..., "--data", help="CelebA root (holding img_align_celeba/)."),
    out: Path = typer.Option(..., "--out", help="Folder: vae/ and ae/ runs, compare.png and compare.json."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config for both models."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Config override for both models (repeatable)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs for each model."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop each model after this many steps."),
    n: int = typer.Option(16, "--n", min=2, max=64, help="Samples per panel (two rows)."),
    components: int = typer.Option(10, "--components", min=1, help="GMM components fitted to the latents."),
    seed: int = typer.Option(0, "--seed", help="Seed for the samples (the same noise for both models)."),
    reuse: bool = typer.Option(False, "--reuse", help="Keep models already trained in OUT/vae and OUT/ae."),
    device: str = DeviceOpt,
    progress_bar: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a VAE and a plain autoencoder with the same architecture and budget; draw them side by side."""
    from facevae.tasks.compare import compare as run_compare

    if any(s.strip().startswith("model.kind") for s in set_):
        raise FacevaeError("compare sets model.kind itself (vae and ae): drop --set model.kind")
    cfg = build_config(config, set_, epochs, max_steps)
    check_writable(out, folder=True)
    report = run_compare(data, out, cfg, reuse=reuse, n=n, components=components, seed=seed, device=device,
                         progress=progress_bar)
    numbers = "; ".join(f"{m}: " + ", ".join(f"{k} {v:.4g}" for k, v in vals.items())
                        for m, vals in report["metrics"].items())
    typer.echo(f"wrote {out / report['figure']} ({numbers})")


def _count(n: int, noun: str) -> str:
    """'1 face', '3 faces'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
