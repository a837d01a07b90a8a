"""What a training run keeps in its folder: the trainer's checkpoint and the metrics log.

Only the main process (rank 0 under DDP) writes. A checkpoint holds everything a
resumed run needs to continue as if never stopped (weights, EMA, optimizer, loss
scale, RNG); the metrics log is trimmed back to the checkpoint it resumes from.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.io import atomic_write_text
from facevae.modelfiles.checkpoint import first_nonfinite, load_checkpoint, save_checkpoint
from facevae.runfolder import RunFolder
from facevae.training.ema import EMA
from facevae.training.optim import load_optimizer_state

LOSS_TERMS = ("total", "recon", "kl")  # the keys of losses.LossTerms.detached(), as step rows log them


class TrainingDiverged(FacevaeError):
    pass


# ---- checkpoints ---------------------------------------------------------------------

def trainer_state(step: int, skipped: int, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  device: torch.device) -> dict:
    """The trainer's part of a checkpoint (beside the weights): where it is and how it steps on."""
    s = {"step": step, "skipped": skipped, "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
         "rng_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        s["rng_cuda"] = torch.cuda.get_rng_state(device)
    return s


def save(run_dir: Path, cfg: RunConfig, model: nn.Module, ema: EMA | None, state: dict) -> None:
    """Write the checkpoint and the weights file; TrainingDiverged instead when any tensor is not finite."""
    ema_state = ema.state_dict() if ema else None
    model_state = model.state_dict()
    # a finite loss does not mean finite weights (an inf BatchNorm variance, inf Adam moments):
    # a non-finite state is never written over the last good checkpoint
    bad = first_nonfinite({**_named("model", model_state), **_named("ema", ema_state or {}),
                           **_optimizer_tensors(model, state["optimizer"])})
    if bad is not None:
        raise TrainingDiverged(f"training diverged: at step {state['step']} {bad} is not finite, so it was not "
                               f"saved; {last_good(run_dir)}")
    save_checkpoint(run_dir, cfg, model_state, state, ema_state)


def _named(prefix: str, state: dict) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def _optimizer_tensors(model: nn.Module, opt_state: dict) -> dict[str, torch.Tensor]:
    names = [n for n, _ in model.named_parameters()]
    return {f"optimizer.{names[i]}.{k}": v for i, per_param in opt_state["state"].items()
            for k, v in per_param.items() if isinstance(v, torch.Tensor)}


def last_good(run_dir: Path) -> str:
    """What is left to resume from: said only of a checkpoint that exists and is finite."""
    if not RunFolder(run_dir).checkpoint.is_file():
        return ("there is no earlier checkpoint: lower train.lr or set train.grad_clip, then start again "
                "with --overwrite")
    _, model_state, state, ema = load_checkpoint(run_dir)
    if first_nonfinite({**_named("model", model_state), **_named("ema", ema or {})}) is not None:
        return (f"the checkpoint in {run_dir} is not finite either (written by an older facevae): "
                f"lower train.lr or set train.grad_clip, then start again with --overwrite")
    return (f"the last good checkpoint (step {int(state['step'])}) in {run_dir} is intact: lower "
            f"train.lr or set train.grad_clip, then --resume")


def restore(run_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            ema: EMA | None, device: torch.device) -> tuple[int, int] | None:
    """Load the run's checkpoint into the live objects; (step, skipped), or None when it has none yet."""
    if not RunFolder(run_dir).checkpoint.is_file():
        return None
    _, model_state, state, ema_state = load_checkpoint(run_dir)
    try:
        model.load_state_dict(model_state)
    except RuntimeError:
        raise FacevaeError(f"the checkpoint in {run_dir} does not match the configured model: "
                           "resume with the run's own config or start a new --out") from None
    load_optimizer_state(opt, state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if ema and ema_state is not None:
        ema.load_state_dict(ema_state)
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in state:
        torch.cuda.set_rng_state(state["rng_cuda"], device)
    return int(state["step"]), int(state.get("skipped", 0))


# ---- the metrics log -----------------------------------------------------------------

class MetricsLog:
    """metrics.jsonl, one JSON row per logged step and per epoch, mirrored to TensorBoard when it is on.

    Every method does nothing outside the main process.
    """

    def __init__(self, run_dir: Path, is_main: bool = True):
        self.folder, self.is_main = RunFolder(run_dir), is_main
        self.path = self.folder.metrics
        self.tb = None

    def open_tensorboard(self) -> None:
        if not self.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise FacevaeError("train.tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.tb = SummaryWriter(str(self.folder.tb_dir))

    def write(self, row: dict) -> None:
        if not self.is_main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{row['kind']}/{k}", v, row["step"])

    def trim(self, step: int) -> None:
        """Drop the rows written after `step`, the checkpoint a run resumes from."""
        if not (self.is_main and self.path.is_file()):
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                pass
        # atomic: a kill during the rewrite must not cut the history short
        atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def last_losses(self) -> dict[str, float]:
        return last_losses(self.path) if self.is_main else {}

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def last_losses(path: Path) -> dict[str, float]:
    """The loss terms of the last step row in a metrics log; {} when it holds none."""
    last: dict = {}
    for line in (path.read_text().splitlines() if path.is_file() else []):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        if isinstance(row, dict) and row.get("kind") == "step":
            last = row
    return {k: float(last[k]) for k in LOSS_TERMS if k in last}
