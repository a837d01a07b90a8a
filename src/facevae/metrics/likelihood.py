"""Discrete (8-bit) likelihood of a VAE: negative ELBO and the importance-weighted bound.

Data are 8-bit: every sub-pixel x_i is an integer level k in {0..255} and the
model sees u = k / 255 in [0, 1]. The decoders are continuous densities on u,
so each one is turned into a distribution over the 256 levels by integrating
it over the level's bin, u in [(k - 0.5) / 255, (k + 0.5) / 255]:

* Gaussian (loss.recon=mse, mean sigmoid(logit), scale sigma) and Laplace
  (loss.recon=l1): p(k) = F(hi) - F(lo) with F the decoder's CDF; the edge bins
  reach to -inf (k = 0) and +inf (k = 255), so no mass is lost (the PixelCNN++
  and IWAE practice).
* Bernoulli (loss.recon=bce): the BCE term u log(l) + (1 - u) log(1 - l) is the
  log of an *unnormalised* density on [0, 1]. Normalised, it is the continuous
  Bernoulli (Loaiza-Ganem & Cunningham, 2019), which is exactly the exponential
  density eta * exp(eta u) / (exp(eta) - 1) on [0, 1] with eta = the decoder
  logit. We integrate that over the bins (edge bins end at 0 and 1, the
  support). This is the decoder's own functional form made into a proper
  discrete likelihood; the training loss (the "surrogate" below) differs from
  its continuous version only by the dropped normaliser.

A log-probability is then a sum over D = 3 * H * W sub-pixels; bits/dim is
nats / (D ln 2), the unit of published 8-bit image likelihoods.

For images x and k draws z_j ~ q(z|x), with log w_j = log p(x|z_j) + log p(z_j) - log q(z_j|x):

* negative ELBO  = -(1/k) sum_j log p(x|z_j) + KL(q(z|x) || N(0, I))  (KL in closed form),
* IWAE NLL bound = -log (1/k) sum_j w_j  (Burda et al., 2016),

both upper bounds on -log p(x); the IWAE one tightens as k grows and equals the
ELBO in expectation at k = 1. The "training surrogate" is the same negative
ELBO with the loss the model was trained with (on u, continuous units): it is
what training minimised, not a likelihood of the 8-bit data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from facevae.config import LossConfig
from facevae.decoders import LN2, decoder_distribution
from facevae.errors import FacevaeError
from facevae.metrics.stderr import clustered_stderr
from facevae.models.posterior import standard_normal_log_prob
from facevae.models.vae import VAE

_F64 = torch.float64


def decoder_log_scale(model: VAE, loss: LossConfig) -> torch.Tensor | float:
    """log sigma (Gaussian) or log b (Laplace) as trained: learned when the model has one, else loss.sigma."""
    return model.log_sigma.detach().float() if model.log_sigma is not None else math.log(loss.sigma)


def log_px_given_z(x8: torch.Tensor, logits: torch.Tensor, recon: str, log_scale: torch.Tensor | float) -> torch.Tensor:
    """Discrete log p(x|z) per image (float64 nats), summed over the 3*H*W sub-pixels."""
    return decoder_distribution(recon).discrete_log_prob(x8, logits, log_scale).flatten(1).sum(1)


# ----------------------------------------------------------------------------- bounds

def bits_per_dim(nats: float | torch.Tensor, dims: int) -> float | torch.Tensor:
    return nats / (dims * LN2)


# bits/dim measures the decoder's likelihood as much as the model: a BCE model scored under the
# continuous Bernoulli reads 7.5 bits/dim where a discretised Gaussian on the same images reads 6.4
BITS_PER_DIM_CAVEATS = {
    "bce": "continuous-Bernoulli bits/dim of a BCE decoder, not comparable with Gaussian, Laplace or published "
           "(discretised logistic) figures: on the same images a discretised Gaussian gave 6.4 where this gave 7.5; "
           "train with --config celeba64-sigma for comparable bits/dim",
}


def bits_per_dim_caveat(recon: str) -> str:
    return BITS_PER_DIM_CAVEATS.get(recon, f"bits/dim compares only models scored under the same decoder "
                                           f"likelihood ({decoder_distribution(recon).description})")


@dataclass
class LikelihoodResult:
    """Per-image bounds (float64 CPU tensors, nats) and how they were estimated."""

    neg_elbo: torch.Tensor
    iwae_nll: torch.Tensor
    surrogate: torch.Tensor  # negative ELBO with the training loss (continuous units): not a likelihood
    kl: torch.Tensor
    k: int
    dims: int
    decoder: str
    recon: str

    def summary(self, clusters: np.ndarray | None = None) -> dict:
        """Means with per-image standard errors, and ones clustered by identity when `clusters` is given."""
        n = len(self.neg_elbo)

        def stat(t: torch.Tensor) -> dict:
            mean, se = float(t.mean()), float(t.std() / math.sqrt(n)) if n > 1 else float("nan")
            out = {"nats": mean, "stderr_nats": se, "bits_per_dim": bits_per_dim(mean, self.dims)}
            if clusters is not None:
                out["stderr_nats_by_identity"] = clustered_stderr(t.numpy(), clusters)
            return out

        return {
            "images": n, "k": self.k, "dims": self.dims, "decoder_likelihood": self.decoder,
            "bits_per_dim_caveat": bits_per_dim_caveat(self.recon),
            **({"identities": len(np.unique(clusters))} if clusters is not None else {}),
            "neg_elbo": stat(self.neg_elbo), "iwae_nll": stat(self.iwae_nll),
            "kl_nats": float(self.kl.mean()),
            "training_surrogate": {"loss": self.recon, **_without_bpd(stat(self.surrogate)),
                                   "note": "negative ELBO with the training loss on x/255 (continuous units); "
                                           "what training minimised, not a likelihood of the 8-bit data"},
        }


def _without_bpd(s: dict) -> dict:
    # continuous-density nats on [0, 1]: dividing by D ln 2 would look like, but not be, bits/dim
    return {k: v for k, v in s.items() if k != "bits_per_dim"}


def _check_vae(model: VAE) -> None:
    if not model.is_vae:
        raise FacevaeError("likelihood bounds need a VAE: a deterministic autoencoder (model.kind=ae) has no "
                           "posterior q(z|x) to sample; skip the likelihood for it")


@dataclass
class LogWeights:
    """Per-draw terms for one batch: log w (k, B), log p(x|z) (k, B), training-loss NLL (k, B), closed-form KL (B,)."""

    log_w: torch.Tensor
    log_px: torch.Tensor
    train_nll: torch.Tensor
    kl: torch.Tensor


@torch.no_grad()
def log_weights(model: VAE, x8: torch.Tensor, loss: LossConfig, k: int, generator: torch.Generator,
                chunk: int = 256) -> LogWeights:
    """k importance draws z_j ~ q(z|x) for a uint8 batch, float64, on x8's device.

    Draws are made `max(1, chunk // B)` at a time, so k x B decodes never sit in memory at once.
    """
    _check_vae(model)
    if k < 1:
        raise FacevaeError(f"importance samples must be >= 1, got {k}")
    x = x8.float().div(255.0)
    post = model.encode(x)
    q = post.double()  # summing ~L terms of a float32 log-density loses the IWAE's precision
    log_scale = decoder_log_scale(model, loss)
    train_nll = decoder_distribution(loss.recon).nll
    log_w, log_px, surr = [], [], []
    per = max(1, chunk // len(x))
    for start in range(0, k, per):
        kc = min(per, k - start)
        eps = torch.randn((kc, *post.mean.shape), generator=generator, device=generator.device,
                          dtype=post.mean.dtype).to(post.mean.device)
        z = post.mean + post.std * eps  # (kc, B, L)
        logits = model.decode_logits(z.flatten(0, 1))
        xk = x8.repeat(kc, 1, 1, 1)
        lp = log_px_given_z(xk, logits, loss.recon, log_scale).view(kc, -1)
        log_px.append(lp)
        surr.append(train_nll(xk.float().div(255.0), logits.float(), log_scale).flatten(1).sum(1).view(kc, -1).double())
        z64 = z.double()
        log_w.append(lp + standard_normal_log_prob(z64) - q.log_prob(z64))
    return LogWeights(torch.cat(log_w), torch.cat(log_px), torch.cat(surr), post.kl().double())


def batch_bounds(model: VAE, x8: torch.Tensor, loss: LossConfig, k: int, generator: torch.Generator,
                 chunk: int = 256) -> dict[str, torch.Tensor]:
    """Per-image negative ELBO, IWAE NLL, surrogate and KL (float64) for one uint8 batch."""
    w = log_weights(model, x8, loss, k, generator, chunk)
    return {
        "neg_elbo": -w.log_px.mean(0) + w.kl,
        "iwae_nll": -(torch.logsumexp(w.log_w, 0) - math.log(k)),
        "surrogate": w.train_nll.mean(0) + w.kl,
        "kl": w.kl,
    }


@torch.no_grad()
def likelihood_bounds(model: VAE, images: torch.Tensor, loss: LossConfig, *, k: int = 64, seed: int = 0,
                      device: torch.device | str = "cpu", batch_size: int = 64, chunk: int = 256,
                      progress: bool = False) -> LikelihoodResult:
    """Negative ELBO and IWAE-k NLL of uint8 images (N, 3, H, W), per image, in nats."""
    from tqdm import tqdm

    _check_vae(model)
    if images.dtype != torch.uint8:
        raise FacevaeError("likelihood needs the 8-bit images (uint8 N x 3 x H x W), not floats")
    model.eval()
    device = torch.device(device)
    # noise from a CPU generator: the same draws on every device
    g = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {}
    for start in tqdm(range(0, len(images), batch_size), desc=f"likelihood (k={k})", unit="batch",
                      disable=not progress, leave=False):
        x8 = images[start:start + batch_size].to(device)
        for name, t in batch_bounds(model, x8, loss, k, g, chunk).items():
            parts.setdefault(name, []).append(t.cpu())
    out = {name: torch.cat(ts) for name, ts in parts.items()}
    return LikelihoodResult(out["neg_elbo"], out["iwae_nll"], out["surrogate"], out["kl"], k,
                            int(images[0].numel()), decoder_distribution(loss.recon).description, loss.recon)
