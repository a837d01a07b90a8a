"""A plain PyTorch training loop for the VAE/AE, with resume, EMA and a NaN guard.

The trainer gets its model, loaders and run folder from the caller; it builds no
data. Only the main process (rank 0 under DDP) writes files.
"""
from __future__ import annotations

import contextlib
import json
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
from facevae.io import atomic_write_text
from facevae.losses import beta_at, vae_loss
from facevae.models.vae import VAE
from facevae.modelfiles.checkpoint import CHECKPOINT, CONFIG, first_nonfinite, load_checkpoint, save_checkpoint
from facevae.training import distributed
from facevae.training.ema import EMA
from facevae.training.options import OPTIMIZERS, PRECISIONS, SCHEDULES

def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None means fp32.

    On CPU only bf16 is used, and only where oneDNN runs it natively (AVX512-BF16 or
    AMX): there it nearly doubles a step's speed; emulated bf16 or fp16 would be slower than fp32.
    """
    if precision not in PRECISIONS:
        raise FacevaeError(f"unknown train.precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if device.type == "cuda" and dtype is torch.bfloat16 and not fast_cuda_bf16(device):
        return torch.float16
    if device.type == "cuda" or dtype is None:
        return dtype
    if device.type == "cpu" and dtype is torch.bfloat16 and native_cpu_bf16():
        return dtype
    return None


def fast_cuda_bf16(device: torch.device) -> bool:
    """cuDNN runs bf16 convolutions natively from compute capability 8.0 (Ampere); T4 and V100 take a slow path."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def native_cpu_bf16() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class TrainingDiverged(FacevaeError):
    pass


class BufferGuard:
    """Buffers (BatchNorm statistics and counts) as they were before a step, put back when it is skipped.

    A non-finite forward would otherwise leave NaN running statistics behind, which
    ruin evaluation and sampling although the weights were protected. One flat copy
    per dtype keeps this at a few kernels a step.
    """

    def __init__(self, model: nn.Module):
        self.groups: dict[torch.dtype, list[torch.Tensor]] = {}
        for b in model.buffers():
            self.groups.setdefault(b.dtype, []).append(b)
        self.saved: dict[torch.dtype, torch.Tensor] = {}

    def snapshot(self) -> None:
        self.saved = {dt: _flat(bufs) for dt, bufs in self.groups.items()}

    @torch.no_grad()
    def restore(self, where: torch.Tensor | None = None) -> None:
        """Put the snapshot back: always, or (no sync) only where the 0-dim bool `where` is true."""
        for dt, bufs in self.groups.items():
            if dt not in self.saved:
                continue
            flat = self.saved[dt]
            if where is not None:  # torch.where, not arithmetic: NaN * 0 is still NaN
                flat = torch.where(where, flat, _flat(bufs))
            parts = flat.split([b.numel() for b in bufs])
            torch._foreach_copy_(bufs, [f.view_as(b) for f, b in zip(parts, bufs)])


def _named(prefix: str, state: dict) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


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
    last: dict[str, float]
    images_per_s: float


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device,
                   fused: bool | None = None) -> torch.optim.Optimizer:
    """fused (default: on CUDA) is one kernel per step and can skip a step on a device-side flag."""
    extra = {"fused": True} if (device.type == "cuda" if fused is None else fused) else {}
    return OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)


# how this run steps its optimizer: a checkpoint from another device or mode must not decide it
RUN_FLAGS = ("fused", "foreach", "capturable")


def load_optimizer_state(opt: torch.optim.Optimizer, saved: dict) -> None:
    """`opt.load_state_dict(saved)`, keeping this run's flags and every tensor in its parameter's layout.

    Checkpoints hold the moments contiguous (NCHW) and load_state_dict keeps that,
    while channels_last weights are NHWC: fused Adam needs weights, grads and moments
    with identical strides (CUDA raises, CPU silently computes garbage). Step counts
    go where a fresh optimizer with these flags keeps them (on the device when fused).
    """
    flags = [{k: g[k] for k in RUN_FLAGS if k in g} for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, own in zip(opt.param_groups, flags):
        group.update(own)
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            state = opt.state.get(p, {})
            for key, value in state.items():
                if key == "step" and torch.is_tensor(value):
                    state[key] = value.to(device=p.device if on_device else "cpu", dtype=torch.float32)
                elif torch.is_tensor(value) and value.shape == p.shape:
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def lr_factor(step: int, cfg: TrainConfig, total: int) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then the schedule's shape.

    A pure function of the step rather than a torch scheduler, so resuming needs no scheduler state.
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return SCHEDULES[cfg.schedule](step - cfg.warmup_steps, total - cfg.warmup_steps)


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
        spe = loader.steps_per_epoch
        self.total_steps = t.epochs * spe if t.epochs > 0 else 0
        if t.max_steps:
            self.total_steps = min(self.total_steps, t.max_steps) if self.total_steps else t.max_steps
        if self.total_steps <= 0:
            raise FacevaeError("nothing to train: set --epochs or --max-steps above 0")
        self.opt = make_optimizer(model, t, device, fused=True if self.sync_free else None)
        self.ema = EMA(model, t.ema_decay) if t.ema_decay > 0 else None
        self.autocast_dtype = autocast_dtype(t.precision, device)
        if is_main and self.autocast_dtype is not PRECISIONS[t.precision] and device.type == "cuda":
            print(f"note: compute capability {'.'.join(map(str, torch.cuda.get_device_capability(device)))} runs "
                  "bf16 convolutions on a slow path: training in fp16 with loss scaling instead")
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.autocast_dtype is torch.float16)
        self.step, self.skipped, self.bad_run = 0, 0, 0
        self.buffers = BufferGuard(model)
        # sync-free mode: skipped steps and the current run of them, counted on the device
        self._skipped_dev = torch.zeros((), dtype=torch.int64, device=device)
        self._bad_run_dev = torch.zeros((), dtype=torch.int64, device=device)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.tb = None
        self.stop_requested = False  # set by the first Ctrl-C; the loop saves and stops after the step

    # ---- state -------------------------------------------------------------------
    def state(self) -> dict:
        s = {"step": self.step, "skipped": self.skipped, "optimizer": self.opt.state_dict(),
             "scaler": self.scaler.state_dict(), "rng_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            s["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return s

    def save(self) -> bool:
        """Write a checkpoint (main process); False when none was written."""
        # never checkpoint in the middle of a run of non-finite steps: the last good one stays
        if not self.is_main or self.bad_run:
            return False
        ema = self.ema.state_dict() if self.ema else None
        model_state, state = self.model.state_dict(), self.state()
        # a finite loss does not mean finite weights (an inf BatchNorm variance, inf Adam moments):
        # a non-finite state is never written over the last good checkpoint
        bad = first_nonfinite({**_named("model", model_state), **_named("ema", ema or {}),
                                    **self._optimizer_tensors(state["optimizer"])})
        if bad is not None:
            raise TrainingDiverged(f"training diverged: at step {self.step} {bad} is not finite, so it was not "
                                   f"saved; {self._last_good()}")
        save_checkpoint(self.run_dir, self.cfg, model_state, state, ema)
        return True

    def _optimizer_tensors(self, opt_state: dict) -> dict[str, torch.Tensor]:
        names = [n for n, _ in self.model.named_parameters()]
        return {f"optimizer.{names[i]}.{k}": v for i, per_param in opt_state["state"].items()
                for k, v in per_param.items() if isinstance(v, torch.Tensor)}

    def _last_good(self) -> str:
        """What is left to resume from: said only of a checkpoint that exists and is finite."""
        if not (self.run_dir / CHECKPOINT).is_file():
            return ("there is no earlier checkpoint: lower train.lr or set train.grad_clip, then start again "
                    "with --overwrite")
        _, model_state, state, ema = load_checkpoint(self.run_dir)
        if first_nonfinite({**_named("model", model_state), **_named("ema", ema or {})}) is not None:
            return (f"the checkpoint in {self.run_dir} is not finite either (written by an older facevae): "
                    f"lower train.lr or set train.grad_clip, then start again with --overwrite")
        return (f"the last good checkpoint (step {int(state['step'])}) in {self.run_dir} is intact: lower "
                f"train.lr or set train.grad_clip, then --resume")

    def restore(self) -> None:
        if not (self.run_dir / CHECKPOINT).is_file():  # killed before its first checkpoint: start over
            self._trim_metrics()
            return
        _, model_state, state, ema_state = load_checkpoint(self.run_dir)
        try:
            self.model.load_state_dict(model_state)
        except RuntimeError:
            raise FacevaeError(f"the checkpoint in {self.run_dir} does not match the configured model: "
                               "resume with the run's own config or start a new --out") from None
        load_optimizer_state(self.opt, state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema and ema_state is not None:
            self.ema.load_state_dict(ema_state)
        self.step, self.skipped = int(state["step"]), int(state.get("skipped", 0))
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        self._trim_metrics()

    def _trim_metrics(self) -> None:
        """Drop log lines written after the checkpoint we resume from."""
        if not (self.is_main and self.metrics_path.is_file()):
            return
        keep = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.step:
                    keep.append(line)
            except json.JSONDecodeError:
                pass
        # atomic: a kill during the rewrite must not cut the history short
        atomic_write_text(self.metrics_path, "".join(k + "\n" for k in keep))

    # ---- logging -----------------------------------------------------------------
    def log(self, row: dict) -> None:
        if not self.is_main:
            return
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{row['kind']}/{k}", v, row["step"])

    def _open_tensorboard(self) -> None:
        if self.cfg.train.tensorboard and self.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise FacevaeError("train.tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.tb = SummaryWriter(str(self.run_dir / "tb"))

    def set_lr(self) -> None:
        lr = self.cfg.train.lr * lr_factor(self.step, self.cfg.train, self.total_steps)
        for group in self.opt.param_groups:
            group["lr"] = lr

    # ---- one step ----------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

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
        torch.manual_seed(self.cfg.train.seed)
        if resume:
            self.restore()
        if self.loader.world_size > 1:  # every rank its own noise for its own images
            torch.manual_seed(distributed.rank_seed(self.cfg.train.seed, self.loader.rank, self.step))
        self._skipped_dev.fill_(self.skipped)
        self._bad_run_dev.zero_()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.cfg.save(self.run_dir / CONFIG)
        self._open_tensorboard()
        spe = self.loader.steps_per_epoch
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (self.progress and self.is_main),
                   unit="step", dynamic_ncols=True)
        last: dict[str, float] = {}
        window_t, window_imgs, ips = time.perf_counter(), 0, 0.0
        self.train_model.train()
        previous_handler = self._catch_ctrl_c()
        try:
            while self.step < self.total_steps:
                epoch, start = divmod(self.step, spe)
                for x in self.loader.epoch(epoch, start):
                    terms = self.train_step(x)
                    # a skipped batch still counts as a step, so step <-> (epoch, batch) stays fixed for resume
                    self.step += 1
                    bar.update(1)
                    window_imgs += x.shape[0] * self.loader.world_size
                    if self.stop_requested:
                        self._stop_for_ctrl_c()
                    if terms is None:
                        self._on_bad_step()
                        if self.step >= self.total_steps:
                            break
                        continue
                    if not self.sync_free:
                        self.bad_run = 0
                    values = None
                    if self.step % self.cfg.train.log_every == 0 or self.step == self.total_steps:
                        values = self._read(terms)
                    if values is not None:
                        now = time.perf_counter()
                        ips = window_imgs / max(now - window_t, 1e-9)
                        window_t, window_imgs = now, 0
                        last = values
                        self.log({"kind": "step", "step": self.step, "epoch": epoch, **last,
                                  "beta": beta_at(self.step, self.cfg.loss), "lr": self.opt.param_groups[0]["lr"],
                                  "images_per_s": round(ips, 1)})
                        bar.set_postfix(loss=f"{last['total']:.1f}", rec=f"{last['recon']:.1f}",
                                        kl=f"{last['kl']:.1f}", ips=f"{ips:.0f}")
                    # at an epoch end the epoch's own checkpoint follows its row (see end_of_epoch)
                    if self.step % self.cfg.train.ckpt_every == 0 and not self._epoch_ends(spe):
                        self._sync_counters()
                        self.save()
                    if self.step >= self.total_steps:
                        break
                if self._epoch_ends(spe):
                    self.end_of_epoch(epoch)
                    window_t, window_imgs = time.perf_counter(), 0  # the logged rate is training alone
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            bar.close()
            if self.tb is not None:
                self.tb.close()
        self._sync_counters()
        return TrainResult(self.step, self.step // spe, self.skipped, last, ips)

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
                          f"{self._last_good()}")

    def _on_bad_step(self) -> None:
        self.skipped += 1
        self.bad_run += 1
        self._stop_if_diverged()

    def _stop_if_diverged(self) -> None:
        if self.bad_run >= self.cfg.train.nan_patience:
            raise TrainingDiverged(f"{self.bad_run} steps in a row gave a non-finite loss at step {self.step}; "
                                   f"{self._last_good()}")

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
            self.log(row)
            if self.on_epoch_end is not None:
                self.on_epoch_end(EpochEnd(epoch, self.step, self.shipped_model, self.val_images, self.run_dir,
                                           self.metrics_path))
        self.save()
        distributed.barrier()  # the other ranks wait here, outside any DDP collective, until rank 0 is done
