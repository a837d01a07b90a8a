"""Wire a training run together: data -> cache -> loaders -> model -> trainer."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import torch

from facevae.config import ModelConfig, RunConfig
from facevae.data import BatchLoader, load_images, open_dataset, place_images
from facevae.errors import FacevaeError
from facevae.io import check_writable, remove_temp_files
from facevae.models import build_model
from facevae.models.size import check_fits
from facevae.training import distributed
from facevae.training import summary
from facevae.modelfiles.checkpoint import load_checkpoint
from facevae.runfolder import TRAIN_FILES, TRAIN_FOLDERS, RunFolder
from facevae.training.distributed import check_batch
from facevae.training.runlock import run_lock
from facevae.training.trainer import EpochEnd, Trainer, TrainResult
from facevae.modelfiles.device import memory_of, resolve_device


# settings that change what the weights mean: a resumed run must keep them
RESUME_FIXED = [f"model.{k}" for k in ModelConfig.__dataclass_fields__] + ["data.crop"]


def saved_config(run_dir: Path) -> RunConfig:
    run = RunFolder(run_dir)
    if not run.checkpoint.is_file() and run.config.is_file():
        return RunConfig.load(run.config)  # killed before its first checkpoint
    return load_checkpoint(run_dir)[0]


def check_resume(run_dir: Path, cfg: RunConfig) -> None:
    """New settings may change training length and such, never the model being resumed or its data."""
    saved = dict(saved_config(run_dir).items())
    diff = [k for k, v in cfg.items() if k in RESUME_FIXED and saved[k] != v]
    if diff:
        raise FacevaeError(f"cannot resume: settings differ from the run's ({', '.join(diff)}); "
                           "drop them or start a new --out")


def holds_run(run_dir: Path) -> bool:
    run = RunFolder(run_dir)
    return any(p.exists() for p in (run.checkpoint, run.config, run.metrics))


def check_out_dir(run_dir: Path, resume: bool, overwrite: bool = False) -> None:
    if resume and overwrite:
        raise FacevaeError("--resume continues a run and --overwrite starts it afresh: pass one of them")
    if run_dir.exists() and not run_dir.is_dir():
        raise FacevaeError(f"--out {run_dir} is a file: choose a folder")
    check_writable(run_dir, folder=True)


def check_run_state(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Under the run's lock: what the folder holds must fit --resume / --overwrite."""
    if resume and not holds_run(run_dir):
        raise FacevaeError(f"no checkpoint in {run_dir}: nothing to resume; drop --resume to start afresh")
    if not resume and not overwrite and holds_run(run_dir):
        raise FacevaeError(f"{run_dir} already holds a run: pass --resume to continue it, --overwrite to "
                           "start it afresh, or choose another --out")


def clear_run(run_dir: Path) -> None:
    for name in TRAIN_FILES:  # what `train` writes, and nothing else
        (run_dir / name).unlink(missing_ok=True)
    for name in TRAIN_FOLDERS:
        shutil.rmtree(run_dir / name, ignore_errors=True)


def train(data: str | Path, out: str | Path, cfg: RunConfig, *, resume: bool = False, overwrite: bool = False,
          device: str = "auto", progress: bool = True, rank: int = 0, world_size: int = 1,
          placement: str = "auto") -> TrainResult:
    """Train one run (or one rank of a DDP run: see training.distributed).

    The main process holds the run folder's lock throughout: one writer per run.
    overwrite: start afresh in a folder that holds a run (its run files are removed first).
    placement: "auto" keeps the uint8 training set on the GPU when it fits and otherwise
    streams it from host memory through pinned buffers; "host" forces streaming (also on
    CPU, for tests). world_size > 1: train.batch_size is the global batch (see distributed).
    """
    run_dir = Path(out)
    check_model_fits(cfg, resolve_device(device), world_size)
    check_out_dir(run_dir, resume, overwrite)
    check_batch(cfg.train.batch_size, world_size)
    with run_lock(run_dir) if rank == 0 else contextlib.nullcontext():
        if rank == 0:
            prepare_run_dir(run_dir, resume, overwrite)
        return _train(data, run_dir, cfg, resume=resume, device=device, progress=progress, rank=rank,
                      world_size=world_size, placement=placement)


def check_model_fits(cfg: RunConfig, dev: torch.device, world_size: int = 1) -> None:
    """Before build_model and before any data is read: a model too large for memory is a one-line error."""
    available, where = memory_of(dev)
    check_fits(cfg.model, available, batch_size=-(-cfg.train.batch_size // world_size),  # one rank's share
               ema=cfg.train.ema_decay > 0, where=where)


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Under the run's lock, before any work: check --resume/--overwrite, clear or tidy the folder."""
    check_run_state(run_dir, resume, overwrite)
    if overwrite:
        clear_run(run_dir)
    for folder in (run_dir, RunFolder(run_dir).recon_dir):  # temp files of atomic writes killed in this run
        remove_temp_files(folder)


def _train(data, run_dir: Path, cfg: RunConfig, *, resume: bool, device: str, progress: bool, rank: int,
           world_size: int, placement: str) -> TrainResult:
    dev = resolve_device(device)
    dataset = open_dataset(data, cfg.data.val_fraction)
    if dataset.missing and rank == 0:
        print(f"note: {dataset.missing} images listed in the annotations are missing from "
              f"{dataset.image_dir}; training on the {len(dataset)} present")
    cache, cache_was_there = summary.cache_file(dataset, cfg), summary.cache_file(dataset, cfg).exists()
    images = load_images(dataset, cfg, progress=progress and rank == 0)
    train_idx, val_idx = dataset.split_indices("train"), _val_indices(dataset)
    torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
    model = build_model(cfg.model).to(dev)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    placed, rows = _place(images, train_idx, dev, placement)
    try:
        loader = BatchLoader(placed, cfg.train.batch_size, dev, flip=cfg.data.flip, seed=cfg.train.seed,
                             rank=rank, world_size=world_size, stream=True if placement == "host" else None,
                             rows=rows)
    except ValueError as e:
        raise FacevaeError(f"{e}: lower train.batch_size") from None
    val_images = torch.from_numpy(images[val_idx])
    # train.sync_bn (DDP on CUDA): BatchNorm statistics over the global batch instead of each rank's share
    if world_size > 1 and cfg.train.sync_bn:
        if dev.type != "cuda":
            raise FacevaeError("train.sync_bn needs CUDA GPUs: drop it for CPU runs (or use model.norm=group)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train_model = _wrap(model, cfg, dev, world_size)
    trainer = Trainer(cfg, model, loader, val_images, run_dir, dev, train_model=train_model,
                      is_main=rank == 0, progress=progress,
                      on_epoch_end=lambda end: epoch_pictures(end, cfg.train.grid_images))
    splits = {"train": len(train_idx), "valid": len(val_idx)}
    if rank == 0:
        summary.say(summary.start_lines(trainer, dataset, splits, cache, cache_was_there, resume))
    with kernel_choice(cfg.train.deterministic, dev):
        result = trainer.fit(resume=resume)
    if rank == 0:
        summary.say(summary.end_lines(run_dir))
    return result


@torch.no_grad()
def epoch_pictures(end: EpochEnd, grid_images: int) -> None:
    """recon/epoch_NNNN.png (fixed validation faces above their reconstructions) and loss_curve.png."""
    from facevae.viz.grid import pairs_grid, save_image
    from facevae.viz.plots import plot_losses

    was_training = end.model.training
    end.model.eval()
    x = end.val_images[:grid_images].to(next(end.model.parameters()).device).float().div(255)
    recon = end.model(x, sample=False).recon
    end.model.train(was_training)
    run = RunFolder(end.run_dir)
    save_image(pairs_grid(x.cpu(), recon.cpu()), run.recon_grid(end.epoch))
    plot_losses(end.metrics_path, run.loss_curve)


def _place(images, train_idx, dev: torch.device, placement: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    try:
        return place_images(images, dev, placement=placement, indices=train_idx)
    except torch.cuda.OutOfMemoryError:
        raise FacevaeError("the training images do not fit in GPU memory: leave placement on auto "
                           "to stream them from host memory, or lower model.image_size") from None


@contextlib.contextmanager
def kernel_choice(deterministic: bool, dev: torch.device):
    """The fastest kernels, or (train.deterministic) only those that give bit-identical reruns.

    Training batches all have one shape, so by default cuDNN times its algorithms once and
    keeps the fastest; which one wins can change from run to run, and with it the rounding.
    The process-wide switches are put back afterwards.
    """
    cudnn = torch.backends.cudnn
    saved = cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled()
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what cuBLAS needs to be reproducible
    cudnn.benchmark, cudnn.deterministic = dev.type == "cuda" and not deterministic, deterministic
    torch.use_deterministic_algorithms(deterministic)
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved[:2]
        torch.use_deterministic_algorithms(saved[2])


def _val_indices(dataset):
    try:
        return dataset.split_indices("valid")
    except FacevaeError:
        return dataset.split_indices("train")[-64:]


def _wrap(model, cfg: RunConfig, dev: torch.device, world_size: int):
    wrapped = model
    if distributed.active():  # every torchrun job, one process included
        from torch.nn.parallel import DistributedDataParallel

        # gradient_as_bucket_view: gradients live in the all-reduce buckets (no copy in, less memory)
        wrapped = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                          gradient_as_bucket_view=True)
    if cfg.train.compile:
        wrapped = torch.compile(wrapped)
    return wrapped

