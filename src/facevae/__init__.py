"""facevae: variational autoencoders for faces.

    import facevae
    vae = facevae.load()                 # the bundled model; or a run folder, a file, a Hub id
    facevae.save_grid(vae.sample(16, seed=0), "faces.png")
"""
from facevae.config import DataConfig, LossConfig, ModelConfig, RunConfig, SharpConfig, TrainConfig
from facevae.errors import FacevaeError

__version__ = "0.1.0"
__all__ = ["load", "FaceVAE", "save_grid", "to_pil", "DataConfig", "LossConfig", "ModelConfig", "RunConfig",
           "SharpConfig", "TrainConfig", "FacevaeError", "__version__"]

# imported on first use, so `import facevae` (and `facevae --help`) does not pay for the model code
_LAZY = {"load": "facevae.api", "FaceVAE": "facevae.api", "save_grid": "facevae.viz.grid",
         "to_pil": "facevae.viz.grid"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facevae' has no attribute {name!r}")
