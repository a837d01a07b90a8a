"""Which torch device a command runs on."""
from __future__ import annotations

import os

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


def memory_of(dev: torch.device) -> tuple[int | None, str]:
    """Total bytes of a device (None where the OS does not say), and its name in messages."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[1], "this GPU"
    if not hasattr(os, "sysconf"):  # Windows: nothing to ask, so nothing is checked
        return None, "this machine"
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine"
