"""Training plots, drawn on `matplotlib.figure.Figure` objects.

Figures are built without pyplot, so no backend is chosen for the whole process
(importing facevae never changes how the caller's own matplotlib plots show) and
no global figure list has to be closed.
"""
from __future__ import annotations

import json
from pathlib import Path

from typing import Any

from matplotlib.figure import Figure

from facevae.io import atomic_write


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return out


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kw: Any) -> tuple[Figure, Any]:
    """pyplot.subplots' (figure, axes) without pyplot's global state."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> Path:
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    return Path(path)


def plot_losses(metrics_path: Path, out: Path) -> Path:
    """Total, reconstruction and KL per step, with per-epoch validation points."""
    rows = read_jsonl(metrics_path)
    steps = [r for r in rows if r.get("kind") == "step"]
    epochs = [r for r in rows if r.get("kind") == "epoch" and "val_total" in r]
    fig, axes = subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, ("total", "recon", "kl"), ("total loss", "reconstruction NLL", "KL")):
        ax.plot([r["step"] for r in steps], [r[key] for r in steps], lw=1, label="train")
        if epochs:
            ax.plot([r["step"] for r in epochs], [r[f"val_{key}"] for r in epochs], "o-", ms=4, label="valid")
        ax.set_title(f"{title} (nats / image)")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return save_figure(fig, out)
