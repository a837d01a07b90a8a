"""Training plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from facevae.io import atomic_write  # noqa: E402


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


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def plot_losses(metrics_path: Path, out: Path) -> Path:
    """Total, reconstruction and KL per step, with per-epoch validation points."""
    rows = read_jsonl(metrics_path)
    steps = [r for r in rows if r.get("kind") == "step"]
    epochs = [r for r in rows if r.get("kind") == "epoch" and "val_total" in r]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
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
