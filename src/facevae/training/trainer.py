"""The training step and the loop around it: EMA, validation, a NaN guard and Ctrl-C.

The trainer gets its model, loaders and run folder from the caller; it builds no
data. What it keeps on disk (checkpoints, metrics.jsonl) is `training.persist`; the
precision it steps in is `training.precision_policy`; the optimizer is `training.optim`.
Only the main process (rank 0 under DDP) writes files.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from facevae.config import RunConfig, TrainConfig
from facevae.data.loader import BatchLoader, iterate_fixed
from facevae.errors import FacevaeError, Interrupted
from facevae.losses import beta_at, vae_loss
from facevae.models.vae import VAE
from facevae.runfolder import RunFolder
from facevae.training import distributed, persist, precision_policy
from facevae.training.buffers import BufferGuard
from facevae.training.ema import EMA
from facevae.training.optim import lr_factor, make_optimizer
from facevae.training.persist import MetricsLog, TrainingDiverged


@dataclass(frozen=True)
class EpochEnd:
    """What an end-of-epoch hook gets: the shipped weights (EMA when on), the validation images, where to write."""

    epoch: int
    step: int
    model: nn.Module
    val_images: torch.Tensor  # uint8 (N, 3, H, W)
    run_dir: Path
    metrics_path: Path


@dataclass
class TrainResult:
    step: int
    epoch: int
    skipped_steps: int
    last: dict[str, float]  # the last logged losses: this run's, or on resume those in metrics.jsonl
    images_per_s: float


class Throughput:
    """Images per second over the steps since the last log point; pictures and validation do not count."""

    def __init__(self):
        self.ips = 0.0
        self.restart()

    def restart(self) -> None:
        self.since, self.images = time.perf_counter(), 0

    def add(self, images: int) -> None:
        self.images += images

    def read(self) -> float:
        now = time.perf_counter()
        self.ips = self.images / max(now - self.since, 1e-9)
        self.since, self.images = now, 0
        return self.ips


def total_steps(t: TrainConfig, steps_per_epoch: int) -> int:
    """train.epochs in steps, capped by train.max_steps (either alone when the other is 0)."""
    total = t.epochs * steps_per_epoch if t.epochs > 0 else 0
    if t.max_steps:
        total = min(total, t.max_steps) if total else t.max_steps
    if total <= 0:
        raise FacevaeError("nothing to train: set --epochs or --max-steps above 0")
    return total


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        model: VAE,
        loader: BatchLoader,
        val_images: torch.Tensor,
        run_dir: Path,
        device: torch.device,
        *,
        train_model: nn.Module | None = None,  # the DDP or compiled wrapper, when there is one
        is_main: bool = True,
        progress: bool = True,
        sync_free: bool | None = None,  # default: on CUDA (see train_step)
        on_epoch_end: Callable[[EpochEnd], None] | None = None,  # pictures and such, on rank 0 (see run.py)
    ):
        self.on_epoch_end = on_epoch_end
        self.cfg, self.model, self.loader, self.device = cfg, model, loader, device
        self.sync_free = device.type == "cuda" if sync_free is None else sync_free
        self.train_model = model if train_model is None else train_model  # `or` would call len() on a compiled one
        self.val_images, self.run_dir = val_images, Path(run_dir)
        self.is_main, self.progress = is_main, progress
        t = cfg.train
        self.total_steps = total_steps(t, loader.steps_per_epoch)
        self.opt = make_optimizer(model, t, device, fused=True if self.sync_free else None)
        self.ema = EMA(model, t.ema_decay) if t.ema_decay > 0 else None
        self.autocast_dtype = precision_policy.autocast_dtype(t.precision, device)
        note = precision_policy.fallback_note(t.precision, device)
        if is_main and note:
            print(note)
        self.scaler = precision_policy.grad_scaler(self.autocast_dtype, device)
        self.step, self.skipped, self.bad_run = 0, 0, 0
        self.buffers = BufferGuard(model)
        # sync-free mode: skipped steps and the current run of them, counted on the device
        self._skipped_dev = torch.zeros((), dtype=torch.int64, device=device)
        self._bad_run_dev = torch.zeros((), dtype=torch.int64, device=device)
        self.metrics = MetricsLog(self.run_dir, is_main)
        self.stop_requested = False  # set by the first Ctrl-C; the loop saves and stops after the step

    # ---- the run folder (training.persist) ----------------------------------------------
    def save(self) -> bool:
        """Write a checkpoint (main process); False when none was written."""
        # never checkpoint in the middle of a run of non-finite steps: the last good one stays
        if not self.is_main or self.bad_run:
            return False
        state = persist.trainer_state(self.step, self.skipped, self.opt, self.scaler, self.device)
        persist.save(self.run_dir, self.cfg, self.model, self.ema, state)
        return True

    def restore(self) -> None:
        """Continue from the run's checkpoint, or from step 0 when it was killed before its first one."""
        saved = persist.restore(self.run_dir, self.model, self.opt, self.scaler, self.ema, self.device)
        if saved is not None:
            self.step, self.skipped = saved
        self.metrics.trim(self.step)

    def set_lr(self) -> None:
        lr = self.cfg.train.lr * lr_factor(self.step, self.cfg.train, self.total_steps)
        for group in self.opt.param_groups:
            group["lr"] = lr

    # ---- one step ----------------------------------------------------------------
    def _autocast(self):
        return precision_policy.autocast(self.autocast_dtype, self.device)

    def train_step(self, x: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """One optimizer step; returns detached loss terms, or None when skipped as non-finite.

        In sync-free mode (CUDA) nothing here waits for the GPU: the terms are always
        returned and a non-finite step is masked on the device (see _masked_step).
        """
        if self.cfg.train.channels_last:  # oneDNN and cuDNN both run NHWC convolutions faster
            x = x.contiguous(memory_format=torch.channels_last)
        self.buffers.snapshot()
        with self._autocast():
            out = self.train_model(x)
        terms = vae_loss(x, out, cfg=self.cfg.loss, step=self.step)
        self.opt.zero_grad(set_to_none=True)
        self.set_lr()
        self.scaler.scale(terms.total).backward()
        ok = torch.isfinite(terms.total)
        # sync-free fp16 checks the unscaled gradients itself, so one flag skips a bad loss or bad gradients
        if self.cfg.train.grad_clip > 0 or (self.sync_free and self.scaler.is_enabled()):
            self.scaler.unscale_(self.opt)
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip or math.inf)
            ok = ok & torch.isfinite(norm)
        ok = distributed.agree_ok(ok)  # one rank's NaN skips the step everywhere, or the replicas diverge
        if self.sync_free:
            self._masked_step(ok)
            return terms.detached()
        if not bool(ok):  # the one per-step sync: a skipped step must not touch the weights
            self.opt.zero_grad(set_to_none=True)
            self.buffers.restore()
            if self.scaler.is_enabled():
                self.scaler.update(self.scaler.get_scale() / 2)
            return None
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.ema:
            self.ema.update(self.model, self.step)
        return terms.detached()

    def _masked_step(self, ok: torch.Tensor) -> None:
        """The skip without a host sync (CUDA): the fused optimizer reads the flag on the device.

        A bad step leaves weights, Adam moments and step counts, and BatchNorm statistics as
        they were; the host still counts it as a step (it cannot know), the skipped steps are
        counted on the device and read at log points, where a run of them stops training.
        """
        bad = ~ok
        # GradScaler's protocol with fused optimizers; under fp16 the gradients are unscaled already (train_step)
        self.opt.grad_scale, self.opt.found_inf = None, bad.float()
        try:
            self.opt.step()
        finally:
            del self.opt.grad_scale, self.opt.found_inf
        if self.scaler.is_enabled():  # backs off on the non-finite gradients unscale_ found
            self.scaler.update()
        self.buffers.restore(where=bad)
        if self.ema:  # on a bad step this averages towards unchanged weights, which is harmless
            self.ema.update(self.model, self.step)
        bad_i = bad.to(torch.int64)
        self._skipped_dev.add_(bad_i)
        self._bad_run_dev.add_(1).mul_(bad_i)

    def _sync_counters(self) -> None:
        """Sync-free mode: bring the device's skip counters to the host and stop on a run of bad steps."""
        if self.sync_free:
            self.skipped, self.bad_run = (int(v) for v in torch.stack([self._skipped_dev, self._bad_run_dev]).tolist())
            self._stop_if_diverged()

    def _read(self, terms: dict[str, torch.Tensor]) -> dict[str, float] | None:
        """Loss terms averaged over ranks, on the host (a sync: log points only); None for a skipped step."""
        values = distributed.mean_over_ranks(torch.stack([v.float() for v in terms.values()])).tolist()
        self._sync_counters()
        return None if self.bad_run else dict(zip(terms, values))

    # ---- loop --------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        self._start(resume)
        # on resume the losses logged so far stand until this run logs its own (none when it had finished)
        last = self.metrics.last_losses() if resume else {}
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (self.progress and self.is_main),
                   unit="step", dynamic_ncols=True)
        rate = Throughput()
        self.train_model.train()
        previous_handler = self._catch_ctrl_c()
        try:
            last = self._loop(bar, rate, last)
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            bar.close()
            self.metrics.close()
        self._sync_counters()
        return TrainResult(self.step, self.step // self.loader.steps_per_epoch, self.skipped, last, rate.ips)

    def _start(self, resume: bool) -> None:
        """Seeds, the resumed state, the run folder's config and TensorBoard: all before the first step."""
        torch.manual_seed(self.cfg.train.seed)
        if resume:
            self.restore()
        if self.loader.world_size > 1:  # every rank its own noise for its own images
            torch.manual_seed(distributed.rank_seed(self.cfg.train.seed, self.loader.rank, self.step))
        self._skipped_dev.fill_(self.skipped)
        self._bad_run_dev.zero_()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.cfg.save(RunFolder(self.run_dir).config)
        if self.cfg.train.tensorboard:
            self.metrics.open_tensorboard()

    def _loop(self, bar: tqdm, rate: Throughput, last: dict[str, float]) -> dict[str, float]:
        """Epochs of steps up to total_steps; returns the last logged losses."""
        spe = self.loader.steps_per_epoch
        while self.step < self.total_steps:
            epoch, start = divmod(self.step, spe)
            for x in self.loader.epoch(epoch, start):
                terms = self.train_step(x)
                # a skipped batch still counts as a step, so step <-> (epoch, batch) stays fixed for resume
                self.step += 1
                bar.update(1)
                rate.add(x.shape[0] * self.loader.world_size)
                values = self._after_step(terms, epoch, bar, rate)
                last = last if values is None else values
                if self.step >= self.total_steps:
                    break
            if self._epoch_ends(spe):
                self.end_of_epoch(epoch)
                rate.restart()  # the logged rate is training alone
        return last

    def _after_step(self, terms: dict[str, torch.Tensor] | None, epoch: int, bar: tqdm,
                    rate: Throughput) -> dict[str, float] | None:
        """Ctrl-C, the NaN guard, the log row and the periodic checkpoint; returns the losses when logged."""
        if self.stop_requested:
            self._stop_for_ctrl_c()
        if terms is None:
            self._on_bad_step()
            return None
        if not self.sync_free:
            self.bad_run = 0
        values = None
        if self.step % self.cfg.train.log_every == 0 or self.step == self.total_steps:
            values = self._read(terms)
        if values is not None:
            self._log_step(values, epoch, bar, rate.read())
        # at an epoch end the epoch's own checkpoint follows its row (see end_of_epoch)
        if self.step % self.cfg.train.ckpt_every == 0 and not self._epoch_ends(self.loader.steps_per_epoch):
            self._sync_counters()
            self.save()
        return values

    def _log_step(self, values: dict[str, float], epoch: int, bar: tqdm, ips: float) -> None:
        self.metrics.write({"kind": "step", "step": self.step, "epoch": epoch, **values,
                            "beta": beta_at(self.step, self.cfg.loss), "lr": self.opt.param_groups[0]["lr"],
                            "images_per_s": round(ips, 1)})
        bar.set_postfix(loss=f"{values['total']:.1f}", rec=f"{values['recon']:.1f}", kl=f"{values['kl']:.1f}",
                        ips=f"{ips:.0f}")

    def _epoch_ends(self, steps_per_epoch: int) -> bool:
        return self.step % steps_per_epoch == 0 or self.step >= self.total_steps

    def _catch_ctrl_c(self):
        """The first Ctrl-C asks the loop to save and stop after the current step; the second stops at once.

        Only a single process that owns the main thread does this (DDP ranks would stop at different
        steps); returns the handler to put back, or None when none was installed.
        """
        if self.loader.world_size > 1 or threading.current_thread() is not threading.main_thread():
            return None

        def second_ctrl_c(signum, frame):
            print(f"interrupted again: stopping at once; {self.run_dir} keeps its last checkpoint", file=sys.stderr)
            raise KeyboardInterrupt

        def first_ctrl_c(signum, frame):
            self.stop_requested = True
            signal.signal(signal.SIGINT, second_ctrl_c)

        return signal.signal(signal.SIGINT, first_ctrl_c)

    def _stop_for_ctrl_c(self) -> None:
        self._sync_counters()
        if self.save():
            raise Interrupted(f"saved step {self.step} to {self.run_dir}; `--resume` continues")
        raise Interrupted(f"stopped at step {self.step} inside a run of non-finite steps, so nothing was saved; "
                          f"{persist.last_good(self.run_dir)}")

    def _on_bad_step(self) -> None:
        self.skipped += 1
        self.bad_run += 1
        self._stop_if_diverged()

    def _stop_if_diverged(self) -> None:
        if self.bad_run >= self.cfg.train.nan_patience:
            raise TrainingDiverged(f"{self.bad_run} steps in a row gave a non-finite loss at step {self.step}; "
                                   f"{persist.last_good(self.run_dir)}")

    @property
    def shipped_model(self) -> nn.Module:
        """The weights model.safetensors holds: the EMA average when EMA is on, else the live ones."""
        return self.ema.averaged if self.ema else self.model

    @torch.no_grad()
    def validate(self, limit: int) -> dict[str, float]:
        """Validation losses of the shipped weights (val_weights says which: "ema" or "live")."""
        model = self.shipped_model
        was_training = model.training
        model.eval()
        sums, n = {"total": 0.0, "recon": 0.0, "kl": 0.0}, 0
        # its own generator: evaluation must not move the training RNG stream (resume equivalence)
        g = torch.Generator(self.device).manual_seed(self.cfg.train.seed)
        for x in iterate_fixed(self.val_images, self.cfg.train.batch_size, self.device, limit):
            with self._autocast():
                out = model(x, generator=g)
            terms = vae_loss(x, out, cfg=self.cfg.loss, step=self.step)
            for k, v in terms.detached().items():
                sums[k] += float(v) * len(x)
            n += len(x)
        model.train(was_training)
        return {**{f"val_{k}": v / max(n, 1) for k, v in sums.items()}, "val_weights": "ema" if self.ema else "live"}

    def end_of_epoch(self, epoch: int) -> None:
        self._sync_counters()
        # row and pictures before the checkpoint: a kill between them leaves the previous checkpoint,
        # whose resume trims the row and redoes the epoch; the other order would lose the row for good
        if self.is_main:  # the bare model, never the DDP wrapper: its forward would wait for the other ranks
            row = {"kind": "epoch", "step": self.step, "epoch": epoch, "skipped": self.skipped,
                   **self.validate(self.cfg.train.val_batches)}
            self.metrics.write(row)
            if self.on_epoch_end is not None:
                self.on_epoch_end(EpochEnd(epoch, self.step, self.shipped_model, self.val_images, self.run_dir,
                                           self.metrics.path))
        self.save()
        distributed.barrier()  # the other ranks wait here, outside any DDP collective, until rank 0 is done
