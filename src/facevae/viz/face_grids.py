"""The labelled pictures of edits and interpolations, the same from the CLI and from a notebook."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from facevae.viz.latent_plots import labelled_grid, strength_label


def edit_grid(faces: torch.Tensor, strengths: Sequence[float], title: str, originals: torch.Tensor | None = None,
              scale: int = 1) -> np.ndarray:
    """Rows are faces, columns strengths (faces: (N, S, 3, H, W)); the inputs first when given."""
    cells, labels = faces, [strength_label(s) for s in strengths]
    if originals is not None:
        cells = torch.cat([originals.unsqueeze(1), cells], dim=1)
        labels = ["input", *labels]
    return labelled_grid(cells, labels, title=f"edit: {title}", scale=scale)


def interpolation_grid(faces: torch.Tensor, mode: str, originals: torch.Tensor | None = None,
                       scale: int = 1) -> np.ndarray:
    """One row per pair (faces: (steps, pairs, 3, H, W)), columns labelled by t; images A and B at the ends."""
    steps = len(faces)
    rows = faces.transpose(0, 1)
    labels = [_t_label(i / (steps - 1)) for i in range(steps)]
    if originals is not None:
        rows = torch.cat([originals[:1].unsqueeze(0), rows, originals[1:].unsqueeze(0)], dim=1)
        labels = ["A", *labels, "B"]
    return labelled_grid(rows, labels, title=f"{mode} interpolation, t =", scale=scale)


def _t_label(t: float) -> str:
    return f"{t:.2f}".rstrip("0").rstrip(".") if 0 < t < 1 else str(int(t))
