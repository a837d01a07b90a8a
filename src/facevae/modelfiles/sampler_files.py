"""Sampler files: safetensors holding the fitted tensors, with name and options as metadata."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from facevae.errors import FacevaeError
from facevae.io import atomic_write
from facevae.sampling.base import Sampler
from facevae.sampling.registry import sampler_class

FORMAT = "facevae.sampler/1"


def _widened(t: torch.Tensor) -> torch.Tensor:
    """Samplers compute in float32 or float64: a half-precision file is read back as float32."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def save_sampler(sampler: Sampler, path: str | Path, dtype: torch.dtype | None = None) -> None:
    """Write atomically, so an interrupted save never leaves a half-written sampler.

    dtype (e.g. torch.float16): store the floating matrices (2-D and up: a neural sampler's
    weights) in it, half the bytes for a shipped file; vectors such as the standardisation
    and scalars such as the clip range stay exact. Loading casts them back to float32.
    """
    state = {k: _stored(v.detach().cpu(), dtype).contiguous() for k, v in sampler.state_dict().items()}
    metadata = {"format": FORMAT, "sampler": sampler.name, "options": json.dumps(sampler.options())}
    atomic_write(Path(path), lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_sampler(path: str | Path, device: torch.device | str = "cpu") -> Sampler:
    """The fitted sampler saved at `path`, its tensors on `device`."""
    path = Path(path)
    if not path.is_file():
        raise FacevaeError(f"no sampler file at {path}; fit a sampler and save it there first")
    metadata, state = _read(path)
    try:
        options = json.loads(metadata["options"])
        options.pop("temperature", None)  # files written while temperature was sampler state (the bundled fits)
        sampler = sampler_class(metadata["sampler"]).from_state_dict(state, **options)
    except (KeyError, TypeError, ValueError) as err:
        raise FacevaeError(f"{path} is not a facevae sampler file ({type(err).__name__}); "
                           "delete it and fit the sampler again") from None
    return sampler.to(device)


def _stored(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return t.to(dtype) if dtype is not None and t.is_floating_point() and t.dim() >= 2 else t


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return f.metadata() or {}, {k: _widened(f.get_tensor(k)) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FacevaeError(f"cannot read sampler file {path} ({reason}); delete it and fit the sampler again") from None
