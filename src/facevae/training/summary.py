"""What `train` tells the user before the first step and after the last: the set-up, then where things are."""
from __future__ import annotations

import sys
from pathlib import Path

from facevae import runfolder
from facevae.config import RunConfig
from facevae.data.cache import cache_key
from facevae.io import user_cache
from facevae.modelfiles.checkpoint import load_checkpoint
from facevae.runfolder import RunFolder
from facevae.training.persist import last_losses
from facevae.training.precision_policy import precision_line
from facevae.training.trainer import Trainer

# what the run folder holds after training, in the order a user looks for it
RUN_FILES = ((runfolder.WEIGHTS, "weights"), (runfolder.CHECKPOINT, "checkpoint (--resume)"),
             (runfolder.CONFIG, "config"), (runfolder.METRICS, "losses per step and epoch"),
             (runfolder.LOSS_CURVE, "loss curve"), (runfolder.RECON, "reconstructions per epoch (facevae progress)"),
             (runfolder.TENSORBOARD, "TensorBoard logs"))


def cache_file(dataset, cfg: RunConfig) -> Path:
    """Where `load_images` keeps this data set at this size (see facevae.data.cache)."""
    key = cache_key(dataset, cfg.model.image_size, cfg.data.crop, cfg.data.draft)
    return user_cache() / f"{key}.npy"


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
    if resume:
        lines.append(resume_line(trainer.run_dir, trainer.total_steps))
    return lines


def resume_line(run_dir: Path, total_steps: int) -> str:
    """Where a resumed run starts; a run that had already finished says so, with its last losses."""
    run = RunFolder(run_dir)
    if not run.checkpoint.is_file():  # killed before its first checkpoint
        return "resumed: no checkpoint was written yet, so training starts at step 0"
    step = int(load_checkpoint(run_dir)[2]["step"])  # the trainer restores it itself once fit() starts
    if step < total_steps:
        return f"resumed from step {step:,} of {total_steps:,}"
    at = f"step {step:,} of {total_steps:,}" if step == total_steps else f"step {step:,}; {total_steps:,} asked for"
    losses = last_losses(run.metrics)
    said = f"; its last losses {format_losses(losses)}" if losses else ""
    return f"the run had already finished ({at}){said}: raise --epochs or --max-steps to train it further"


def format_losses(losses: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in losses.items())


def end_lines(run_dir: Path) -> list[str]:
    found = [(name, what) for name, what in RUN_FILES if (run_dir / name).exists()]
    return [f"run folder {run_dir}:"] + [f"  {name:<24} {what}" for name, what in found]


def say(lines: list[str]) -> None:
    print("\n".join(f"train: {ln}" if not ln.startswith(" ") else ln for ln in lines), file=sys.stderr, flush=True)
