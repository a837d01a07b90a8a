"""The decoders a model can draw with: its own (the likelihood decoder) or a sharp one fine-tuned for it.

A sharp decoder lives beside the weights it was trained for (`RUN/sharp_decoder.safetensors`,
or `<name>.sharp_decoder.safetensors` for a bundled model) and records their digest, so it
is never paired with an encoder whose latents it has not seen.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.modelfiles.checkpoint import Checkpoint, first_nonfinite, save_weights
from facevae.models.vae import Decoder
from facevae.runfolder import SHARP_DECODER, RunFolder

FORMAT = "facevae-sharp-decoder-1"
# the decoder a model draws with when none is named: the sharp one wherever it exists
DECODERS = ("auto", "sharp", "likelihood")


def sharp_decoder_path(ckpt: Checkpoint) -> Path | None:
    if ckpt.is_bundled:
        return ckpt.weights.with_name(f"{ckpt.weights.stem}.{SHARP_DECODER}")
    return RunFolder(ckpt.run_dir).sharp_decoder if ckpt.run_dir is not None else None


def build_decoder(cfg: RunConfig) -> Decoder:
    """The sharp decoder's network: the model's decoder, or a wider one when sharp.decoder_widths says so."""
    widths = cfg.sharp.decoder_widths or cfg.model.widths
    return Decoder(replace(cfg.model, widths=widths))


def save_sharp_decoder(path: Path, cfg: RunConfig, decoder: torch.nn.Module, source_digest: str, step: int,
                       dtype: torch.dtype | None = None) -> None:
    save_weights(path, cfg, decoder.state_dict(), {"format": FORMAT, "source": source_digest, "step": str(step)},
                 dtype=dtype)


def sharp_decoder_step(ckpt: Checkpoint) -> int:
    """The fine-tuning step the sharp decoder of `ckpt` was saved at (0 when its file does not say)."""
    with safe_open(str(sharp_decoder_path(ckpt)), framework="pt") as f:
        return int((f.metadata() or {}).get("step", 0))


def resave_sharp_decoder(ckpt: Checkpoint, target: Path, source_digest: str, dtype: torch.dtype | None = None,
                         required: bool = False) -> bool:
    """Save `ckpt`'s sharp decoder as `target`, paired with the weights whose digest is `source_digest`.

    For the same encoder's weights re-saved elsewhere (an export, a bundle): their file has other
    bytes, so the copy names the new digest. False where `ckpt` has no sharp decoder.
    """
    loaded = load_sharp_decoder(ckpt, required=required)
    if loaded is None:
        return False
    decoder, cfg = loaded
    save_sharp_decoder(target, cfg, decoder, source_digest, sharp_decoder_step(ckpt), dtype=dtype)
    return True


def load_sharp_decoder(ckpt: Checkpoint, required: bool = False) -> tuple[Decoder, RunConfig] | None:
    """The sharp decoder trained for `ckpt`'s weights (eval mode, on the model's device), or None."""
    path = sharp_decoder_path(ckpt)
    if path is None or not path.is_file():
        if required:
            name = f"the bundled {ckpt.weights.stem} model" if ckpt.is_bundled else ckpt.source
            raise FacevaeError(f"{name} has no sharp decoder ({SHARP_DECODER}): make one with "
                               "`facevae finetune-decoder`, or use --decoder likelihood")
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise FacevaeError(f"{path} is not a readable sharp decoder ({str(e)[:60]}): delete it or "
                           "run finetune-decoder again") from None
    if meta.get("format") != FORMAT or "config" not in meta:
        raise FacevaeError(f"{path} is not a facevae sharp decoder: delete it or run finetune-decoder again")
    if meta.get("source") != ckpt.digest:
        raise FacevaeError(f"{path} was trained for other weights than {ckpt.weights}: use --decoder likelihood, "
                           "or fine-tune a sharp decoder for these weights")
    bad = first_nonfinite(tensors)
    if bad is not None:
        raise FacevaeError(f"{path} holds NaN or inf ({bad}): its fine-tuning diverged; use --decoder likelihood "
                           "or fine-tune again")
    cfg = RunConfig.from_yaml(meta["config"])
    decoder = build_decoder(cfg)
    try:
        decoder.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError:
        raise FacevaeError(f"{path} does not match the decoder its config describes: the file is damaged") from None
    device = next(ckpt.model.parameters()).device
    return decoder.to(device).eval(), cfg
