"""Latent samplers (prior, full Gaussian, Gaussian mixture, two-stage VAE, diffusion prior) as saveable objects.

    sampler = build_sampler("gmm", latent_dim=128, components=10).fit(posterior_means)
    z = sampler.sample(64, torch.Generator().manual_seed(0), temperature=0.8)

Files are `facevae.modelfiles.sampler_files`'s business (save_sampler, load_sampler).
"""
from facevae.sampling.base import Sampler
from facevae.sampling.diffusion import DiffusionSampler
from facevae.sampling.gaussian import GaussianSampler
from facevae.sampling.gmm import GMMSampler
from facevae.sampling.prior import PriorSampler
from facevae.sampling.registry import SAMPLERS, build_sampler
from facevae.sampling.two_stage import TwoStageSampler

__all__ = ["Sampler", "PriorSampler", "GaussianSampler", "GMMSampler", "TwoStageSampler", "DiffusionSampler",
           "SAMPLERS", "build_sampler"]
