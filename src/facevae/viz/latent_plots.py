"""Pictures of the latent space: labelled face grids, activity/KL plots, PCA, AE-vs-VAE panels."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from facevae.viz.gif import font
from facevae.viz.grid import make_grid, to_uint8
from facevae.viz.plots import save_figure, subplots

PAD = 2


def labelled_grid(cells: torch.Tensor, col_labels: Sequence[str] | None = None, title: str | None = None,
                  scale: int = 1) -> np.ndarray:
    """(R, C, 3, H, W) images as an R x C grid with a label above each column and a title line.

    `scale` enlarges the faces (nearest neighbour would look blocky; Lanczos is used).
    """
    rows, cols = cells.shape[:2]
    body = make_grid(cells.reshape(rows * cols, *cells.shape[2:]), nrow=cols, padding=PAD)
    if scale > 1:
        body = np.asarray(Image.fromarray(body).resize((body.shape[1] * scale, body.shape[0] * scale),
                                                         Image.LANCZOS))
    cell_w = (body.shape[1] - PAD * scale) / cols
    size = int(np.clip(cell_w / 5, 10, 20))
    lines = (1 if col_labels else 0) + (1 if title else 0)
    band_h = lines * (size + 6) + 2
    if not lines:
        return body
    band = Image.new("RGB", (body.shape[1], band_h), "white")
    draw = ImageDraw.Draw(band)
    f = font(size)
    y = 3
    if title:
        _centred(draw, title, body.shape[1] / 2, y, f)
        y += size + 6
    for k, label in enumerate(col_labels or ()):
        _centred(draw, label, PAD * scale + cell_w * (k + 0.5), y, f)
    return np.concatenate([np.asarray(band), body], axis=0)


def _centred(draw: ImageDraw.ImageDraw, text: str, cx: float, top: float, f) -> None:
    box = draw.textbbox((0, 0), text, font=f)
    draw.text((cx - (box[2] - box[0]) / 2 - box[0], top - box[1]), text, fill="black", font=f)


def strength_label(s: float) -> str:
    return "0" if s == 0 else f"{s:+g}"


# ---------------------------------------------------------------------------- latents

def plot_histograms(means: torch.Tensor, activity: torch.Tensor, path: Path, k: int = 4) -> Path:
    """Posterior-mean histograms of the k most and k least active dimensions against the N(0, 1) density."""
    from facevae.latent.stats import normal_pdf

    d = len(activity)
    k = min(k, max(1, d // 2)) if d > 1 else 1
    order = torch.argsort(activity, descending=True).tolist()
    rows = [("most active", order[:k]), ("least active", order[-k:][::-1])] if d > 1 else [("active", order)]
    fig, axes = subplots(len(rows), k, figsize=(3.0 * k, 2.6 * len(rows)), squeeze=False)
    grid = torch.linspace(-4, 4, 200)
    for r, (label, dims) in enumerate(rows):
        for c, dim in enumerate(dims):
            ax = axes[r][c]
            values = means[:, dim].double().numpy()
            lo, hi = min(-4.0, float(values.min())), max(4.0, float(values.max()))
            ax.hist(values, bins=np.linspace(lo, hi, 41), density=True, color="C0", alpha=0.75,
                    label="E[z|x]")
            ax.plot(grid.numpy(), normal_pdf(grid).numpy(), "k--", lw=1.2, label="N(0, 1)")
            ax.set_title(f"{label}: dim {dim}\nVar(E[z|x]) = {float(activity[dim]):.3g}", fontsize=9)
            ax.set_xlim(lo, hi)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle("posterior means per latent dimension vs the prior N(0, 1)", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_kl(activity: torch.Tensor, kl: torch.Tensor | None, threshold: float, path: Path) -> Path:
    """KL per dimension (sorted bars) and activity per dimension with the active-unit threshold."""
    active = (activity > threshold).numpy()
    n_active = int(active.sum())
    panels = 2 if kl is not None else 1
    fig, axes = subplots(1, panels, figsize=(6.5 * panels, 3.6), squeeze=False)
    axes = axes[0]
    x = np.arange(len(activity))
    if kl is not None:
        order = torch.argsort(kl, descending=True).numpy()
        colors = np.where(active[order], "C0", "0.7")
        axes[0].bar(x, kl.numpy()[order], color=colors, width=1.0)
        axes[0].set_title(f"KL per dimension, sorted (total {float(kl.sum()):.1f} nats)", fontsize=10)
        axes[0].set_xlabel("latent dimensions, by KL")
        axes[0].set_ylabel("nats / image")
    ax = axes[-1]
    order = torch.argsort(activity, descending=True).numpy()
    ax.bar(x, activity.numpy()[order], color=np.where(active[order], "C0", "0.7"), width=1.0)
    ax.axhline(threshold, color="C3", lw=1, ls="--", label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_title(f"Var_x(E[z|x]), sorted: {n_active} of {len(activity)} units active", fontsize=10)
    ax.set_xlabel("latent dimensions, by activity")
    ax.legend(fontsize=8)
    for a in axes:
        a.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_pca(coords: torch.Tensor, ratio: torch.Tensor, labels: torch.Tensor | None, attribute: str | None,
             path: Path) -> Path:
    """2-D PCA of the posterior means, coloured by a +1/-1 attribute when given."""
    fig, ax = subplots(figsize=(5.6, 5.0))
    xy = coords.numpy()
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.6, color="C0", lw=0)
    else:
        lab = labels.numpy()
        for value, color, name in ((-1, "C0", f"not {attribute}"), (1, "C1", attribute)):
            pts = xy[lab == value]
            ax.scatter(pts[:, 0], pts[:, 1], s=7, alpha=0.65, color=color, lw=0, label=f"{name} ({len(pts)})")
        ax.legend(fontsize=8, markerscale=2)
    ax.set_xlabel(f"PC 1 ({100 * float(ratio[0]):.1f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * float(ratio[1]):.1f}% of variance)")
    coloured = f"\ncoloured by {attribute}" if attribute else ""
    ax.set_title(f"posterior means, first two principal components{coloured}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------- AE vs VAE

def compare_figure(panels: Mapping[str, Mapping[str, np.ndarray]], metrics: Mapping[str, Mapping[str, float]],
                   path: Path, row_titles: Mapping[str, str]) -> Path:
    """panels[model][row] = uint8 grid image; one column per model, one row per kind of picture."""
    models = list(panels)
    rows = list(row_titles)
    col_w = 5.0  # inches per model column
    # each row as tall as its pictures at the column width, so no blank bands appear between rows
    heights = [max(panels[m][r].shape[0] / panels[m][r].shape[1] for m in models) * col_w for r in rows]
    size = (col_w * len(models) + 1.0, sum(heights) + 0.5 * len(rows) + 0.6)
    fig, axes = subplots(len(rows), len(models), figsize=size, squeeze=False,
                         gridspec_kw={"height_ratios": heights})
    for c, model in enumerate(models):
        for r, row in enumerate(rows):
            ax = axes[r][c]
            ax.imshow(panels[model][row], interpolation="lanczos")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row_titles[row], fontsize=11)
        numbers = "  ".join(f"{k} {v:.3g}" for k, v in metrics.get(model, {}).items())
        axes[0][c].set_title(model + (f"\n{numbers}" if numbers else ""), fontsize=12)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)  # photo panels make big PNGs; 90 dpi keeps 64 px faces sharp


def face_grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    return make_grid(to_uint8(images), nrow=nrow)
