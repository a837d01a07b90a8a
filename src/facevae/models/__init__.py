from facevae.models.posterior import DiagonalGaussian
from facevae.models.vae import VAE, VAEOutput, build_model

__all__ = ["DiagonalGaussian", "VAE", "VAEOutput", "build_model"]
