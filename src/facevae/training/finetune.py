"""`facevae finetune-decoder`: a sharp decoder for a frozen encoder, trained for a fixed wall-clock budget.

The encoder (BatchNorm statistics included) never trains, so posterior means, the fitted
samplers, cached latents and attribute vectors of the source stay valid: the out folder
gets a byte copy of the source weights (same digest) and of those files. Because the
encoder is frozen, every training image is encoded once, before the clock starts, and
each step runs the decoder (and the discriminator) only.
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facevae.api import FaceVAE, load
from facevae.config import RunConfig
from facevae.data import load_images, open_dataset
from facevae.data.encode import cached_latents
from facevae.errors import FacevaeError
from facevae.modelfiles.checkpoint import first_nonfinite, load_state, save_state
from facevae.modelfiles.decoders import build_decoder, save_sharp_decoder
from facevae.modelfiles.samplers import store_dirs
from facevae.modelfiles.attributes import cache_paths
from facevae.models.discriminator import PatchDiscriminator
from facevae.phase import phase
from facevae.runfolder import RunFolder
from facevae.sharp_losses import (ADV_LOSSES, LATENTS, PIXEL_LOSSES, adaptive_weight, feature_matching,
                                  focal_frequency_loss, msssim_loss, r1_penalty)
from facevae.training.ema import EMA
from facevae.training.precision_policy import autocast, autocast_dtype, grad_scaler
from facevae.training.runlock import run_lock

LOG_EVERY = 25
CKPT_EVERY = 200


@dataclass
class SharpResult:
    step: int
    seconds: float  # training wall time over all sessions of this run (the budget counts it)
    last: dict[str, float]
    out: Path


class SharpTrainer:
    """One generator (decoder) step and one discriminator step per batch, losses as `cfg.sharp` says."""

    def __init__(self, cfg: RunConfig, decoder: torch.nn.Module, seed: int = 0):
        s = cfg.sharp
        self.cfg, self.decoder = cfg, decoder.train()
        self.device = next(decoder.parameters()).device
        self.amp = autocast_dtype(cfg.train.precision, self.device)  # bf16 where the CPU runs it natively
        self.scaler = grad_scaler(self.amp, self.device)
        self.adversarial = s.adv_weight > 0
        with torch.random.fork_rng(devices=[]):  # a seeded discriminator, the caller's RNG untouched
            torch.manual_seed(seed)
            self.disc = PatchDiscriminator(s.disc_widths, s.disc_norm).to(self.device) if self.adversarial else None
        # betas (0.5, 0.9): VQGAN's and most GANs' choice, a short momentum for a moving target
        self.opt_g = torch.optim.Adam(decoder.parameters(), lr=s.lr, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=s.disc_lr, betas=(0.5, 0.9)) if self.disc else None
        self.g = torch.Generator().manual_seed(seed)
        self.step, self.seconds, self.adv_scale = 0, 0.0, torch.tensor(1.0)
        self.ema = EMA(decoder, s.ema_decay) if s.ema_decay > 0 else None

    @property
    def saved_decoder(self) -> torch.nn.Module:
        """What later commands draw with: the EMA of the weights when there is one."""
        return self.ema.averaged if self.ema is not None else self.decoder

    def last_layer(self) -> torch.Tensor:
        return self.decoder.to_rgb.weight

    def reconstruction(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict]:
        s = self.cfg.sharp
        terms = {"pixel": PIXEL_LOSSES[s.pixel](fake, real)}
        if s.msssim_weight > 0:
            terms["msssim"] = s.msssim_weight * msssim_loss(fake, real)
        if s.freq_weight > 0:
            terms["freq"] = s.freq_weight * focal_frequency_loss(fake, real)
        return sum(terms.values()), terms

    def judge(self, images: torch.Tensor) -> torch.Tensor:
        with autocast(self.amp, self.device):
            return self.disc(images).float()

    def judge_with_features(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the fakes' logits, feature matching against the reals), one discriminator pass each."""
        with autocast(self.amp, self.device):
            fake_feats, logits = self.disc.features(fake)
            with torch.no_grad():
                real_feats = self.disc.features(real)[0]
        return logits.float(), feature_matching([f.float() for f in fake_feats], [r.float() for r in real_feats])

    def train_step(self, z: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
        s = self.cfg.sharp
        with autocast(self.amp, self.device):
            logits = self.decoder(z)
        fake = torch.sigmoid(logits.float())  # the losses in float32, whatever the nets ran in
        rec, terms = self.reconstruction(fake, real)
        total = rec
        playing = self.adversarial and self.step >= s.disc_start
        if playing:
            self.disc.requires_grad_(False)  # the generator step needs no discriminator gradients
            if s.feature_weight > 0:
                logits, matched = self.judge_with_features(fake, real)
                terms["features"] = s.feature_weight * matched
            else:
                logits = self.judge(fake)
            gen = ADV_LOSSES[s.adv_loss][1](logits)
            if s.adaptive and self.step % s.adaptive_every == 0:  # two extra gradients: not every step
                self.adv_scale = adaptive_weight(rec, gen, self.last_layer(), s.adaptive_limit)
            weight = s.adv_weight * (self.adv_scale if s.adaptive else 1.0)
            total = rec + weight * gen + terms.get("features", 0.0)
            terms.update(gen=gen, adv_scale=self.adv_scale)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.decoder, self.step)
        if playing:
            terms["disc"] = self.disc_step(real, fake.detach())
        self.step += 1
        return {"total": total.item(), **{k: float(v.detach()) for k, v in terms.items()}}

    def disc_step(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        s = self.cfg.sharp
        self.disc.requires_grad_(True)
        lazy_r1 = s.r1_weight > 0 and self.step % s.r1_every == 0
        real = real.requires_grad_(lazy_r1)
        real_logits = self.judge(real)
        loss = ADV_LOSSES[s.adv_loss][0](real_logits, self.judge(fake))
        if lazy_r1:  # every r1_every steps, scaled up by r1_every: the same penalty on average (StyleGAN2)
            loss = loss + 0.5 * s.r1_weight * s.r1_every * r1_penalty(real_logits, real)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt_d)
        self.scaler.update()
        return loss.detach()

    def state(self) -> dict:
        out = {"decoder": self.decoder.state_dict(), "opt_g": self.opt_g.state_dict(), "step": self.step,
               "seconds": self.seconds, "adv_scale": self.adv_scale, "rng": self.g.get_state(),
               "scaler": self.scaler.state_dict()}
        if self.disc is not None:
            out.update(disc=self.disc.state_dict(), opt_d=self.opt_d.state_dict())
        if self.ema is not None:
            out["ema"] = self.ema.state_dict()
        return out

    def restore(self, state: dict, saved: RunConfig) -> None:
        """Continue from `state`, saved under config `saved`: the nets' shapes must be the same."""
        shape = ("decoder_widths", "disc_widths", "disc_norm")
        now, then = self.cfg.sharp, saved.sharp
        changed = [k for k in shape if getattr(now, k) != getattr(then, k)]
        switched = [k for k in ("adv_weight", "ema_decay") if (getattr(now, k) > 0) != (getattr(then, k) > 0)]
        if changed or switched:
            what = ", ".join([*(f"sharp.{k}" for k in changed), *(f"sharp.{k} (on/off)" for k in switched)])
            raise FacevaeError(f"the run in this folder was made with another {what}: resume without changing it, "
                               "or start afresh in another --out")
        try:
            self.decoder.load_state_dict(state["decoder"])
            self.opt_g.load_state_dict(state["opt_g"])
            if self.disc is not None:
                self.disc.load_state_dict(state["disc"])
                self.opt_d.load_state_dict(state["opt_d"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
        except (RuntimeError, ValueError, KeyError):
            raise FacevaeError("the fine-tuning state does not match its config: the file is damaged; "
                               "start afresh in another --out") from None
        self.scaler.load_state_dict(state.get("scaler", {}))
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.adv_scale, _ = state["adv_scale"], self.g.set_state(state["rng"])


# ---------------------------------------------------------------------------- the run


def finetune_decoder(source: str | Path | None, data: str | Path, out: str | Path, cfg: RunConfig, *,
                     minutes: float, max_steps: int = 0, resume: bool = False, device: str = "cpu",
                     progress: bool = True) -> SharpResult:
    """Fine-tune a sharp decoder for `source`'s encoder on `data`'s training split, for `minutes` of training."""
    out = RunFolder(Path(out))
    _check_out(out, resume)
    vae = load(out.path if resume else source, device=device, decoder="likelihood")  # resume: the copied model
    if cfg.model != vae.config.model:
        raise FacevaeError("finetune-decoder keeps the source's model (its encoder and latent space): "
                           "drop --set model.*; a wider decoder is --set sharp.decoder_widths=[...]")
    out.path.mkdir(parents=True, exist_ok=True)
    with run_lock(out.path):
        if not resume:
            _copy_source(vae, out)
        cfg.save(out.config)
        images, means, logvars = _training_latents(vae, data, out, progress)
        trainer = SharpTrainer(cfg, _initial_decoder(vae, cfg), seed=cfg.train.seed)
        if resume:
            saved, state = load_state(out.sharp_checkpoint)
            trainer.restore(state, saved)
            _trim_log(out, trainer.step)
        with phase(f"fine-tuning the decoder for {minutes:g} minutes of training", progress):
            last = _loop(trainer, images, means, logvars, out, vae, minutes * 60, max_steps)
        _save(trainer, out, vae)
    return SharpResult(trainer.step, trainer.seconds, last, out.path)


def _check_out(out: RunFolder, resume: bool) -> None:
    if resume and not out.sharp_checkpoint.is_file():
        raise FacevaeError(f"no fine-tuning to resume in {out.path}: drop --resume to start afresh")
    if not resume and out.sharp_checkpoint.is_file():
        raise FacevaeError(f"{out.path} holds a fine-tuning run: --resume continues it, or pick another --out")
    if not resume and (out.checkpoint.is_file() or out.weights.is_file()):
        raise FacevaeError(f"{out.path} holds a model: pick a new --out for the sharp decoder")


def _copy_source(vae: FaceVAE, out: RunFolder) -> None:
    """The source's weights (byte for byte: same digest), fitted samplers and attribute vectors, reused as they are."""
    ckpt = vae.checkpoint
    shutil.copyfile(ckpt.weights, out.weights)
    out.samplers_dir.mkdir(exist_ok=True)
    for folder in store_dirs(ckpt):
        for f in folder.glob(f"*-{ckpt.weights_id}.safetensors"):
            shutil.copyfile(f, out.samplers_dir / f.name)
    vectors = next((p for p in cache_paths(ckpt)[0] if p.is_file()), None)
    if vectors is not None:
        shutil.copyfile(vectors, out.attribute_vectors)


def _training_latents(vae: FaceVAE, data, out: RunFolder, progress: bool):
    """uint8 training images and the frozen encoder's posterior (mean, logvar), flipped copies included."""
    cfg = vae.config
    ds = open_dataset(data, cfg.data.val_fraction)
    idx = ds.split_indices("train")
    images = torch.from_numpy(np.ascontiguousarray(load_images(ds, cfg, progress=progress)[idx]))
    if cfg.data.flip:  # the encoder saw flips in training: the decoder learns both sides too
        images = torch.cat([images, images.flip(-1)])
    key = json.dumps({"weights": vae.checkpoint.digest, "n": len(images), "flip": cfg.data.flip,
                      "files": ds.filenames[idx[0]] + ds.filenames[idx[-1]]})
    with phase(f"encoding {len(images):,} training images once (the encoder is frozen)", progress):
        means, logvars = cached_latents(vae.model, images, out.train_latents, key, vae.device)
    return images, means, logvars


def _initial_decoder(vae: FaceVAE, cfg: RunConfig) -> torch.nn.Module:
    if cfg.sharp.decoder_widths:  # a wider decoder starts from scratch, seeded
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            return build_decoder(cfg).to(vae.device)
    return copy.deepcopy(vae.model.decoder)


def _loop(trainer: SharpTrainer, images, means, logvars, out: RunFolder, vae: FaceVAE, budget: float,
          max_steps: int) -> dict[str, float]:
    batch, dev = trainer.cfg.train.batch_size, vae.device
    latent = LATENTS[trainer.cfg.sharp.latent]
    last: dict[str, float] = {}
    while trainer.seconds < budget and (not max_steps or trainer.step < max_steps):
        start = time.perf_counter()
        pick = torch.randint(len(images), (batch,), generator=trainer.g)
        z = latent(means[pick], logvars[pick], trainer.g).to(dev)
        real = images[pick].to(dev).float().div(255)
        last = trainer.train_step(z, real)
        trainer.seconds += time.perf_counter() - start
        if trainer.step % LOG_EVERY == 0:
            _log(out, {"kind": "sharp", "step": trainer.step, "seconds": round(trainer.seconds, 1), **last})
        if trainer.step % CKPT_EVERY == 0:
            _save(trainer, out, vae)
    return last


def _trim_log(out: RunFolder, step: int) -> None:
    """Drop the log rows written after the checkpoint a run resumes from."""
    if out.metrics.is_file():
        rows = [line for line in out.metrics.read_text().splitlines() if json.loads(line)["step"] <= step]
        out.metrics.write_text("".join(f"{r}\n" for r in rows))


def _log(out: RunFolder, row: dict) -> None:
    with open(out.metrics, "a") as f:
        f.write(json.dumps(row) + "\n")


def _save(trainer: SharpTrainer, out: RunFolder, vae: FaceVAE) -> None:
    """The resumable state first, then the decoder later commands use (eval-mode BatchNorm statistics).

    Nothing non-finite is written: a diverged run keeps its last good files.
    """
    state = trainer.state()
    ema = {f"ema.{k}": v for k, v in state.get("ema", {}).items()}
    bad = first_nonfinite({**state["decoder"], **state.get("disc", {}), **ema})
    if bad is not None:
        raise FacevaeError(f"the fine-tuning diverged by step {trainer.step} ({bad} holds NaN or inf); the last good "
                           f"decoder is kept: lower sharp.adv_weight or sharp.lr and --resume, or start afresh")
    save_state(out.sharp_checkpoint, trainer.cfg, state)
    save_sharp_decoder(out.sharp_decoder, trainer.cfg, trainer.saved_decoder, vae.checkpoint.digest, trainer.step)
