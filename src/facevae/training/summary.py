"""What `train` tells the user before the first step and after the last: the set-up, then where things are."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from facevae.config import RunConfig
from facevae.data.cache import cache_key
from facevae.io import user_cache
from facevae.modelfiles.checkpoint import CHECKPOINT, CONFIG, WEIGHTS, load_checkpoint
from facevae.training.options import PRECISIONS
from facevae.training.trainer import Trainer, autocast_dtype

# what the run folder holds after training, in the order a user looks for it
RUN_FILES = ((WEIGHTS, "weights"), (CHECKPOINT, "checkpoint (--resume)"), (CONFIG, "config"),
             ("metrics.jsonl", "losses per step and epoch"), ("loss_curve.png", "loss curve"),
             ("recon", "reconstructions per epoch (facevae progress)"), ("tb", "TensorBoard logs"))


def cache_file(dataset, cfg: RunConfig) -> Path:
    """Where `load_images` keeps this data set at this size (see facevae.data.cache)."""
    key = cache_key(dataset, cfg.model.image_size, cfg.data.crop, cfg.data.draft)
    return user_cache() / f"{key}.npy"


def precision_line(precision: str, device: torch.device) -> str:
    """The precision the steps run in, with the reason when it is not the one asked for."""
    used = autocast_dtype(precision, device)
    if used is PRECISIONS.get(precision):
        return precision
    reason = "is not native on this CPU" if precision == "bf16" else f"has no fast path on {device.type}"
    return f"fp32 ({precision} {reason})"


def start_lines(trainer: Trainer, dataset, splits: dict[str, int], cache: Path, cache_was_there: bool,
                resume: bool = False) -> list[str]:
    t = trainer.cfg.train
    spe = trainer.loader.steps_per_epoch
    lines = [
        f"device {trainer.device}, precision {precision_line(t.precision, trainer.device)}",
        "images: " + ", ".join(f"{n:,} {name}" for name, n in splits.items()) + f" (of {len(dataset):,})",
        f"{spe:,} steps per epoch of {t.batch_size}, {trainer.total_steps:,} steps in all"
        f" ({trainer.total_steps / spe:.3g} epoch{'' if trainer.total_steps == spe else 's'})",
        f"image cache {'found' if cache_was_there else 'built'}: {cache}",
    ]
    if resume and (trainer.run_dir / CHECKPOINT).is_file():  # the trainer restores it itself once fit() starts
        step = int(load_checkpoint(trainer.run_dir)[2]["step"])
        lines.append(f"resumed from step {step:,} of {trainer.total_steps:,}")
    elif resume:  # killed before its first checkpoint
        lines.append("resumed: no checkpoint was written yet, so training starts at step 0")
    return lines


def end_lines(run_dir: Path) -> list[str]:
    found = [(name, what) for name, what in RUN_FILES if (run_dir / name).exists()]
    return [f"run folder {run_dir}:"] + [f"  {name:<24} {what}" for name, what in found]


def say(lines: list[str]) -> None:
    print("\n".join(f"train: {ln}" if not ln.startswith(" ") else ln for ln in lines), file=sys.stderr, flush=True)
