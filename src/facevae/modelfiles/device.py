"""Which torch device a command runs on."""
from __future__ import annotations

import torch

from facevae.errors import FacevaeError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacevaeError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise FacevaeError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)
