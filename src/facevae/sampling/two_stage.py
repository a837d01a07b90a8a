"""Two-stage VAE sampler (Dai & Wipf, "Diagnosing and Enhancing VAE Models", ICLR 2019).

The first-stage VAE's posterior means do not follow its N(0, I) prior, so prior
samples land where the image decoder was rarely trained. A second, small VAE fitted
to the (standardised) means learns their law: with a learned decoder variance gamma
it can shrink gamma towards 0 and make its own aggregate posterior N(0, I), so its
decoder pushes N(0, I) onto the means' distribution.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from facevae.errors import FacevaeError
from facevae.models.posterior import kl_to_standard_normal, normal_log_density
from facevae.sampling.base import SAMPLE_DTYPE, Sampler, check_draw, standard_normal
from facevae.sampling.neural import (check_fit_options, net_from_state, seeded_init, standardisation,
                                     stored_standardisation, training_allowed)

# One minibatch's loss is too noisy to compare fits by; the mean of the last steps is not.
_LOSS_TAIL = 100
# log_gamma has to travel several nats, and Adam moves it by at most ~lr a step: at
# the net's lr, 4000 cosine-decayed steps could never take gamma below exp(-steps * lr / 2).
_GAMMA_LR_SCALE = 10.0
_MAX_GRAD_NORM = 100.0


class SkipMLP(nn.Module):
    """`depth` x (Linear, SiLU), then a linear head that also sees the input.

    The skip keeps an affine map (the Gaussian sampler's solution) one layer away,
    as in Dai & Wipf's second stage, so the trunk only has to learn the non-Gaussian rest.
    """

    def __init__(self, d_in: int, d_out: int, hidden: int, depth: int):
        super().__init__()
        widths = [d_in] + [hidden] * depth
        self.trunk = nn.Sequential(*(m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.SiLU())))
        self.head = nn.Linear(d_in + hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([x, self.trunk(x)], dim=-1))


class TwoStageSampler(Sampler):
    """A second VAE (MLP encoder and decoder, latent size = D) on the standardised posterior means.

    Trained with Adam and a cosine learning-rate decay for `steps` minibatches of
    `batch_size` rows, deterministically for a given `seed` and device. Sampling
    decodes u ~ N(0, T^2 I); only the decoder and the standardisation are kept.
    `final_loss` (nats per latent row, mean of the last steps) and `gamma` describe the fit.

    The defaults (2 x 256, 4000 steps) are sized so that 24,000 x 128 latents fit in
    under a minute on one CPU core; Dai & Wipf's 3 x 1024 costs ~10x that on a CPU.
    """

    name = "two_stage"
    required_keys = ("mean", "std", "log_gamma")

    def __init__(self, latent_dim: int | None = None, hidden: int = 256,
                 depth: int = 2, steps: int = 4000, batch_size: int = 256, lr: float = 3e-3, seed: int = 0):
        super().__init__(latent_dim)
        check_fit_options(hidden=hidden, depth=depth, steps=steps, batch_size=batch_size, seed=seed, lr=lr)
        self.hidden, self.depth, self.steps, self.batch_size = hidden, depth, steps, batch_size
        self.lr, self.seed = float(lr), seed
        self.decoder: SkipMLP | None = None
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.log_gamma = torch.tensor(float("nan"))
        self.final_loss = float("nan")

    @property
    def fitted(self) -> bool:
        return self.decoder is not None

    @property
    def gamma(self) -> float:
        """The second-stage decoder's variance in standardised units; near 0 when the fit is tight."""
        return math.exp(float(self.log_gamma))

    def options(self) -> dict[str, Any]:
        return {**super().options(), "hidden": self.hidden, "depth": self.depth, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed}

    def fit(self, latents: torch.Tensor) -> TwoStageSampler:
        d = self._check_latents(latents, min_rows=2)
        mean, std = standardisation(latents)
        with training_allowed():
            z = ((latents.detach().to(torch.float64) - mean) / std).to(torch.float32).clone()
            decoder, log_gamma, self.final_loss = self._train(z)
        self._adopt(decoder, mean, std, log_gamma.detach())
        self.latent_dim = d
        return self

    def _train(self, z: torch.Tensor) -> tuple[SkipMLP, torch.Tensor, float]:
        encoder, decoder = self._init_nets(z.shape[1], z.device)
        log_gamma = nn.Parameter(torch.zeros((), device=z.device))
        groups = [{"params": [*encoder.parameters(), *decoder.parameters()]},
                  {"params": [log_gamma], "lr": self.lr * _GAMMA_LR_SCALE}]
        opt = torch.optim.Adam(groups, lr=self.lr, fused=True)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.steps)
        g = torch.Generator(z.device).manual_seed(self.seed)
        tail = torch.zeros((), device=z.device)  # summed on the device: no host sync per step
        for step in range(self.steps):
            batch = z[torch.randint(len(z), (self.batch_size,), generator=g, device=z.device)]
            loss = negative_elbo(encoder, decoder, log_gamma, batch, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # as gamma shrinks the NLL's gradient grows like 1/gamma; unclipped, some latents' fits went NaN
            nn.utils.clip_grad_norm_([p for group in groups for p in group["params"]], _MAX_GRAD_NORM)
            opt.step()
            schedule.step()
            if step >= self.steps - _LOSS_TAIL:
                tail += loss.detach()
        final = tail.item() / min(self.steps, _LOSS_TAIL)
        if not (math.isfinite(final) and all(bool(p.isfinite().all()) for p in decoder.parameters())):
            raise FacevaeError(f"the two_stage fit diverged (final loss {final}); fit again with a lower lr "
                               f"than {self.lr}")
        return decoder, log_gamma, final

    def _init_nets(self, d: int, device: torch.device) -> tuple[SkipMLP, SkipMLP]:
        with seeded_init(self.seed):
            encoder, decoder = SkipMLP(d, 2 * d, self.hidden, self.depth), SkipMLP(d, d, self.hidden, self.depth)
        return encoder.to(device), decoder.to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        temperature = check_draw(n, temperature)
        d = self._require_fitted()
        assert self.decoder is not None and self.mean is not None and self.std is not None
        u = temperature * standard_normal(n, d, generator, self.device)
        z = self.decoder(u.to(torch.float32)).to(torch.float64)
        return (self.mean + self.std * z).to(SAMPLE_DTYPE)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Standardisation (float64), decoder weights (float32, as trained), log_gamma and final_loss."""
        self._require_fitted()
        assert self.decoder is not None and self.mean is not None and self.std is not None
        weights = {f"decoder.{k}": v for k, v in self.decoder.state_dict().items()}
        final = torch.tensor(self.final_loss, dtype=torch.float64, device=self.mean.device)
        return {"mean": self.mean, "std": self.std, "log_gamma": self.log_gamma, "final_loss": final, **weights}

    def _load(self, state: Mapping[str, torch.Tensor]) -> None:
        mean, std, d = stored_standardisation(state, self.name, "log_gamma", self.latent_dim)
        decoder = net_from_state(state, "decoder.", lambda: SkipMLP(d, d, self.hidden, self.depth),
                                 f"two_stage sampler weights do not fit hidden={self.hidden}, depth={self.depth} "
                                 f"and {d} latent dims; re-fit and save it again")
        self._adopt(decoder, mean, std, state["log_gamma"])
        self.final_loss = float(state.get("final_loss", torch.tensor(float("nan"))))
        self.latent_dim = d

    def _adopt(self, decoder: SkipMLP, mean: torch.Tensor, std: torch.Tensor, log_gamma: torch.Tensor) -> None:
        self.decoder = decoder.eval().requires_grad_(False)
        self.mean, self.std, self.log_gamma = mean, std, log_gamma.to(torch.float32)


def negative_elbo(encoder: SkipMLP, decoder: SkipMLP, log_gamma: torch.Tensor, z: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """Mean over rows of -ELBO: Gaussian NLL of z with variance gamma plus KL(q(u|z) || N(0, I))."""
    mu, logvar = encoder(z).chunk(2, dim=-1)
    eps = torch.randn(mu.shape, generator=generator, device=z.device)
    z_hat = decoder(mu + eps * (0.5 * logvar).exp())
    nll = -normal_log_density(z, z_hat, log_gamma).sum(-1)
    kl = kl_to_standard_normal(mu, logvar).sum(-1)
    return (nll + kl).mean()
