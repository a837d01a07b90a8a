"""The names of the files and folders in a run folder, written here once.

`facevae train --out RUN` writes the training files; later commands add their
artefacts beside them. Every module that reads or writes a run folder takes the
names from here, so renaming one is a one-line change.

  config.yaml                     the run's configuration
  checkpoint.safetensors          model (+ EMA) weights, optimizer and trainer state (--resume)
  model.safetensors               the weights later commands use (EMA when present)
  metrics.jsonl                   one JSON row per logged step and per epoch
  loss_curve.png                  the losses of metrics.jsonl, redrawn each epoch
  recon/epoch_NNNN.png            validation faces above their reconstructions, per epoch
  tb/                             TensorBoard logs (train.tensorboard)
  .lock                           the PID of the process writing the run, while it runs
  samplers/                       fitted latent samplers (sample --sampler gmm and such)
  attribute_vectors.safetensors   cached attribute directions (edit)
  eval/metrics.json               `facevae evaluate --out RUN/eval`, which the model card quotes
  sharp_decoder.safetensors       a sharp decoder for the same encoder (`facevae finetune-decoder`)
  sharp_checkpoint.safetensors    its fine-tuning state: decoder, discriminator, optimizers (--resume)
  latents-train.safetensors       the frozen encoder's posteriors of the training images, cached
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.safetensors"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
LOSS_CURVE = "loss_curve.png"
RECON = "recon"
RECON_GRID = "epoch_{epoch:04d}.png"  # numbered as metrics.jsonl numbers epochs; viz.gif.EPOCH_GRID reads them
TENSORBOARD = "tb"
LOCK = ".lock"
SAMPLERS = "samplers"
ATTRIBUTE_VECTORS = "attribute_vectors.safetensors"
EVAL = "eval"
EVAL_METRICS = "metrics.json"  # the file `facevae evaluate` writes into its --out folder
SHARP_DECODER = "sharp_decoder.safetensors"
SHARP_CHECKPOINT = "sharp_checkpoint.safetensors"
TRAIN_LATENTS = "latents-train.safetensors"

# what `train` writes: a fresh start with --overwrite removes these and nothing else
TRAIN_FILES = (CHECKPOINT, WEIGHTS, CONFIG, METRICS, LOSS_CURVE)
TRAIN_FOLDERS = (RECON, TENSORBOARD)


@dataclass(frozen=True)
class RunFolder:
    """A run folder's paths: `RunFolder(out).metrics` rather than `out / "metrics.jsonl"`."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # frozen: the only way to normalise a field

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def loss_curve(self) -> Path:
        return self.path / LOSS_CURVE

    @property
    def recon_dir(self) -> Path:
        return self.path / RECON

    def recon_grid(self, epoch: int) -> Path:
        return self.recon_dir / RECON_GRID.format(epoch=epoch)

    @property
    def tb_dir(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    @property
    def samplers_dir(self) -> Path:
        return self.path / SAMPLERS

    @property
    def attribute_vectors(self) -> Path:
        return self.path / ATTRIBUTE_VECTORS

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL

    @property
    def eval_metrics(self) -> Path:
        return self.eval_dir / EVAL_METRICS

    @property
    def sharp_decoder(self) -> Path:
        return self.path / SHARP_DECODER

    @property
    def sharp_checkpoint(self) -> Path:
        return self.path / SHARP_CHECKPOINT

    @property
    def train_latents(self) -> Path:
        return self.path / TRAIN_LATENTS
