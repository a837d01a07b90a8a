"""`facevae latents`: encode a split, write the latent-space figures and a JSON summary."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from facevae.errors import FacevaeError
from facevae.tasks.generate import ModelLike, as_model
from facevae.latent.stats import ACTIVE_THRESHOLD, summarize


def latent_report(model: ModelLike, data: str | Path, out: str | Path, *, split: str = "valid",
                  attribute: str | None = "Smiling", threshold: float = ACTIVE_THRESHOLD,
                  device: str = "auto", progress: bool = True) -> dict:
    """Encode a split; write latents_{histograms,kl,pca}.png and latents.json into `out`; return the JSON."""
    from facevae.io import atomic_write_text
    from facevae.latent.attributes import attribute_index
    from facevae.data.encode import encode_images, load_split
    from facevae.viz import latent_plots

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacevaeError(f"--out {out} is a file: give a folder for the figures and latents.json")
    vae = as_model(model, device)
    model, cfg, dev = vae.model, vae.config, vae.device
    ds, idx, images = load_split(data, split, cfg, progress=progress)
    labels, attr_name = None, None
    if attribute:
        if not ds.is_celeba:
            raise FacevaeError(f"{data} has no CelebA attribute file: pass --attribute '' to colour nothing")
        col = attribute_index(ds.attr_names, attribute)
        attr_name = ds.attr_names[col]
        labels = torch.from_numpy(ds.attributes[idx.numpy(), col].astype("int64"))
    means, logvars = encode_images(model, images, dev)
    summary = summarize(means, logvars if model.is_vae else None, threshold)
    files = {
        "histograms": latent_plots.plot_histograms(means, summary.activity, out / "latents_histograms.png"),
        "kl": latent_plots.plot_kl(summary.activity, summary.kl, threshold, out / "latents_kl.png"),
        "pca": latent_plots.plot_pca(summary.pca, summary.pca_ratio, labels, attr_name, out / "latents_pca.png"),
    }
    report = {
        "checkpoint": vae.checkpoint.source, "weights_id": vae.weights_id,
        "data": str(data),
        "split": split,
        "n_images": len(means),
        "model_kind": cfg.model.kind,
        **summary.to_json(),
        "attribute": attr_name,
        "attribute_positive_fraction": None if labels is None else round(float((labels > 0).float().mean()), 4),
        "figures": {k: v.name for k, v in files.items()},
    }
    atomic_write_text(out / "latents.json", json.dumps(report, indent=1) + "\n")
    return report
