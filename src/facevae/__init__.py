"""facevae: variational autoencoders for faces."""
from facevae.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from facevae.errors import FacevaeError

__version__ = "0.1.0"
__all__ = ["DataConfig", "LossConfig", "ModelConfig", "RunConfig", "TrainConfig", "FacevaeError", "__version__"]
