"""Training loop and checkpoints."""
from facevae.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from facevae.training.trainer import Trainer, TrainingDiverged, TrainResult

__all__ = ["Trainer", "TrainResult", "TrainingDiverged", "load_checkpoint", "load_model", "save_checkpoint"]
