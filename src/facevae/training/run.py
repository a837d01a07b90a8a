"""Wire a training run together: data -> cache -> loaders -> model -> trainer."""
from __future__ import annotations

from pathlib import Path

import torch

from facevae.config import RunConfig
from facevae.data import BatchLoader, load_images, open_dataset, place_images
from facevae.errors import FacevaeError
from facevae.models import build_model
from facevae.training import checkpoint as ckpt
from facevae.training import summary
from facevae.training.distributed import check_batch
from facevae.training.trainer import Trainer, TrainResult


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacevaeError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise FacevaeError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def saved_config(run_dir: Path) -> RunConfig:
    return ckpt.load_checkpoint(run_dir)[0]


def check_resume(run_dir: Path, cfg: RunConfig) -> None:
    """New settings may change training length and such, never the model being resumed."""
    saved = saved_config(run_dir)
    diff = [k for k, v in cfg.model.__dict__.items() if getattr(saved.model, k) != v]
    if diff:
        raise FacevaeError(f"cannot resume: model settings differ from the checkpoint's "
                           f"({', '.join('model.' + d for d in diff)}); drop them or start a new --out")


def check_out_dir(run_dir: Path, resume: bool) -> None:
    if not resume and (run_dir / ckpt.CHECKPOINT).exists():
        raise FacevaeError(f"{run_dir} already holds a run: pass --resume to continue it or choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise FacevaeError(f"--out {run_dir} is a file: choose a folder")


def train(data: str | Path, out: str | Path, cfg: RunConfig, *, resume: bool = False, device: str = "auto",
          progress: bool = True, rank: int = 0, world_size: int = 1, placement: str = "auto") -> TrainResult:
    """Train one run (or one rank of a DDP run: see training.distributed).

    placement: "auto" keeps the uint8 training set on the GPU when it fits and otherwise
    streams it from host memory through pinned buffers; "host" forces streaming (also on
    CPU, for tests). world_size > 1: train.batch_size is the global batch (see distributed).
    """
    run_dir = Path(out)
    check_out_dir(run_dir, resume)
    check_batch(cfg.train.batch_size, world_size)
    dev = resolve_device(device)
    dataset = open_dataset(data, cfg.data.val_fraction)
    if dataset.missing and rank == 0:
        print(f"note: {dataset.missing} images listed in the annotations are missing from "
              f"{dataset.image_dir}; training on the {len(dataset)} present")
    size = cfg.model.image_size
    cache, cache_was_there = summary.cache_file(dataset, cfg), summary.cache_file(dataset, cfg).exists()
    images = load_images(dataset, size, cfg.data.crop, cfg.data.draft, workers=cfg.data.workers,
                         progress=progress and rank == 0)
    train_idx, val_idx = dataset.split_indices("train"), _val_indices(dataset)
    torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
    model = build_model(cfg.model).to(dev)
    if dev.type == "cuda":
        _fast_cuda_kernels()
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    placed = _place(images, train_idx, dev, placement)
    try:
        loader = BatchLoader(placed, cfg.train.batch_size, dev, flip=cfg.data.flip, seed=cfg.train.seed,
                             rank=rank, world_size=world_size, stream=True if placement == "host" else None)
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
                      is_main=rank == 0, progress=progress)
    splits = {"train": len(train_idx), "valid": len(val_idx)}
    if rank == 0:
        summary.say(summary.start_lines(trainer, dataset, splits, cache, cache_was_there, resume))
    result = trainer.fit(resume=resume)
    if rank == 0:
        summary.say(summary.end_lines(run_dir))
    return result


def _place(images, train_idx, dev: torch.device, placement: str) -> torch.Tensor:
    try:
        return place_images(images, dev, placement=placement, indices=train_idx)
    except torch.cuda.OutOfMemoryError:
        raise FacevaeError("the training images do not fit in GPU memory: leave placement on auto "
                           "to stream them from host memory, or lower model.image_size") from None


def _fast_cuda_kernels() -> None:
    """Training batches all have one shape: let cuDNN time its algorithms once and keep the fastest."""
    torch.backends.cudnn.benchmark = True


def _val_indices(dataset):
    try:
        return dataset.split_indices("valid")
    except FacevaeError:
        return dataset.split_indices("train")[-64:]


def _wrap(model, cfg: RunConfig, dev: torch.device, world_size: int):
    wrapped = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        # gradient_as_bucket_view: gradients live in the all-reduce buckets (no copy in, less memory)
        wrapped = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                          gradient_as_bucket_view=True)
    if cfg.train.compile:
        wrapped = torch.compile(wrapped)
    return wrapped

