"""Typed, frozen run configuration: YAML in and out, `--set key=value` overrides.

One `RunConfig` travels from the CLI into every checkpoint; each builder gets only
its own part (`cfg.data`, `cfg.model`, `cfg.loss`, `cfg.train`).
"""
from __future__ import annotations

import dataclasses
import math
import operator
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from facevae.errors import FacevaeError, did_you_mean

SUPPORTED_IMAGE_SIZES = (32, 64, 128, 256)

# Each field that names a choice, and its valid names, in the order errors list them. Literal here
# so that checking a config imports nothing above it; tests/test_config.py checks that each tuple
# equals the keys of the registry that builds the thing (models/, decoders.py, training/options.py).
CHOICES: dict[str, tuple[str, ...]] = {
    "model.kind": ("vae", "ae"),
    "model.block": ("conv", "resnet"),
    "model.norm": ("batch", "group", "none"),
    "model.activation": ("leaky_relu", "relu", "silu", "gelu", "elu"),
    "loss.recon": ("bce", "mse", "l1"),
    "train.optimizer": ("adam", "adamw"),
    "train.schedule": ("constant", "cosine"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "sharp.pixel": ("l1", "gaussian"),
    "sharp.adv_loss": ("hinge", "ns"),
    "sharp.disc_norm": ("spectral", "none"),
    "sharp.latent": ("sample", "mean"),
}

# Allowed ranges of numeric fields (each element of a tuple field); every float must also be finite.
LIMITS: dict[str, str] = {
    "data.crop": ">= 1", "data.workers": ">= 0", "data.val_fraction": "> 0, < 1",
    "model.widths": ">= 1", "model.latent_dim": ">= 1", "model.dropout": ">= 0, < 1", "model.res_blocks": ">= 0",
    "loss.sigma": "> 0", "loss.beta": ">= 0", "loss.kl_warmup_steps": ">= 0", "loss.free_bits": ">= 0",
    "train.epochs": ">= 0", "train.max_steps": ">= 0", "train.batch_size": ">= 1", "train.lr": "> 0",
    "train.weight_decay": ">= 0", "train.warmup_steps": ">= 0", "train.grad_clip": ">= 0",
    "train.ema_decay": ">= 0, < 1", "train.log_every": ">= 1", "train.ckpt_every": ">= 1",
    "train.val_batches": ">= 0", "train.grid_images": ">= 1", "train.nan_patience": ">= 1",
    "sharp.msssim_weight": ">= 0", "sharp.freq_weight": ">= 0", "sharp.adv_weight": ">= 0",
    "sharp.adaptive_every": ">= 1", "sharp.adaptive_limit": "> 0", "sharp.feature_weight": ">= 0",
    "sharp.ema_decay": ">= 0, < 1", "sharp.disc_start": ">= 0", "sharp.disc_widths": ">= 1", "sharp.r1_weight": ">= 0",
    "sharp.r1_every": ">= 1", "sharp.lr": "> 0", "sharp.disc_lr": "> 0",
}

_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class DataConfig:
    crop: int = 148  # center crop of the 178x218 aligned image, before resizing
    flip: bool = True  # random horizontal flip while training
    draft: bool = False  # JPEG draft-mode decoding (faster, slightly different pixels)
    workers: int = 0  # cache-build processes; 0 = one per core
    val_fraction: float = 0.02  # plain image folders only: share kept for validation


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "vae"  # "vae" or "ae" (deterministic autoencoder, same nets)
    image_size: int = 64
    widths: tuple[int, ...] = (32, 64, 128, 256, 512)
    latent_dim: int = 128
    norm: str = "batch"  # batch | group | none
    activation: str = "leaky_relu"
    dropout: float = 0.0
    block: str = "conv"  # conv (seed style) | resnet
    res_blocks: int = 1  # residual blocks per stage when block == "resnet"
    learned_sigma: bool = False  # decoder learns one Gaussian sigma (recon = "mse")


@dataclass(frozen=True)
class LossConfig:
    recon: str = "bce"  # bce | mse | l1
    sigma: float = 1.0  # Gaussian sigma (mse) or Laplace scale (l1) when not learned
    beta: float = 1.0
    kl_warmup_steps: int = 0  # beta ramps linearly from 0 over this many steps
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalised


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    max_steps: int = 0  # 0 = no limit
    batch_size: int = 128
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    ema_decay: float = 0.0  # 0 = no EMA weights
    precision: str = "bf16"  # fp32 | bf16 | fp16 autocast; on CPU bf16 only where it is native (else fp32)
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False  # deterministic kernels only (no cuDNN autotuning): bit-identical reruns, slower
    sync_bn: bool = False  # SyncBatchNorm across DDP ranks (CUDA); default: per-rank statistics
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 500  # steps; a checkpoint is also written at each epoch end
    val_batches: int = 8  # validation batches per epoch (0 = whole split)
    grid_images: int = 8  # fixed validation faces in the per-epoch reconstruction grid
    nan_patience: int = 20  # consecutive non-finite steps that stop the run
    tensorboard: bool = False


@dataclass(frozen=True)
class SharpConfig:
    """A sharp decoder fine-tuned on the frozen encoder's latents (`facevae finetune-decoder`)."""

    pixel: str = "l1"  # l1 | gaussian: always on, so the decoder stays anchored to its input
    msssim_weight: float = 0.0  # weight of 1 - MS-SSIM (0 = off)
    freq_weight: float = 0.0  # weight of the focal frequency loss (0 = off)
    adv_weight: float = 0.0  # weight of the patch discriminator's term (0 = off)
    adv_loss: str = "hinge"  # hinge | ns (non-saturating)
    adaptive: bool = True  # scale adv_weight by VQGAN's gradient-norm ratio at the last decoder layer
    adaptive_every: int = 8  # steps between updates of that ratio (each costs two extra gradients)
    adaptive_limit: float = 1e4  # cap on that ratio: VQGAN's 1e4; 1 keeps the adversarial term below the pixel term
    feature_weight: float = 0.0  # pix2pixHD feature matching: L1 between D's features of fake and real (0 = off)
    disc_start: int = 0  # steps of the pixel terms alone before the adversarial term starts
    disc_widths: tuple[int, ...] = (64, 128, 256)  # stride-2 conv widths of the patch discriminator
    disc_norm: str = "spectral"  # spectral | none
    r1_weight: float = 0.0  # R1 gradient penalty on real images (0 = off)
    r1_every: int = 4  # lazy R1: every this many discriminator steps, scaled up to match
    decoder_widths: tuple[int, ...] = ()  # () = the model's decoder, fine-tuned; else a wider one from scratch
    latent: str = "sample"  # sample | mean: what the decoder is fed from q(z|x)
    ema_decay: float = 0.0  # an EMA of the decoder's weights is what gets saved (0 = the live weights)
    lr: float = 1e-4
    disc_lr: float = 2e-4


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sharp: SharpConfig = field(default_factory=SharpConfig)

    def validate(self) -> "RunConfig":
        for key, value in self.items():
            check_limits(key, value)
        for key, value in self.items():
            check_choice(key, value)
        m = self.model
        if m.image_size not in SUPPORTED_IMAGE_SIZES:
            raise FacevaeError(
                f"unsupported image size {m.image_size}: use one of "
                f"{', '.join(map(str, SUPPORTED_IMAGE_SIZES))} (--set model.image_size=64)"
            )
        if m.image_size % (2 ** len(m.widths)) or m.image_size < 2 ** len(m.widths):
            raise FacevaeError(
                f"model.widths has {len(m.widths)} stride-2 stages, too many for "
                f"{m.image_size}x{m.image_size} images: use at most "
                f"{m.image_size.bit_length() - 2} widths"
            )
        if m.learned_sigma and self.loss.recon != "mse":
            raise FacevaeError("model.learned_sigma needs loss.recon=mse")
        if self.data.crop < m.image_size:
            raise FacevaeError(f"data.crop ({self.data.crop}) is smaller than the image size ({m.image_size})")
        if len(self.sharp.disc_widths) > m.image_size.bit_length() - 2:
            raise FacevaeError(f"sharp.disc_widths has {len(self.sharp.disc_widths)} stride-2 layers, too many for "
                               f"{m.image_size}x{m.image_size} images: use at most {m.image_size.bit_length() - 2}")
        if self.sharp.feature_weight > 0 and self.sharp.adv_weight == 0:
            raise FacevaeError("sharp.feature_weight matches the discriminator's features, and there is no "
                               "discriminator without sharp.adv_weight: set both, e.g. --set sharp.adv_weight=0.1")
        wide = self.sharp.decoder_widths
        if wide and (len(wide) != len(m.widths) or min(wide) < 1):
            raise FacevaeError(f"sharp.decoder_widths needs {len(m.widths)} positive widths (one per stage of "
                               f"model.widths), got {list(wide)}: e.g. --set sharp.decoder_widths="
                               f"[{','.join(str(2 * w) for w in m.widths)}]")
        return self

    def items(self) -> list[tuple[str, Any]]:
        """("section.key", value) for every field."""
        return [(f"{s.name}.{f.name}", getattr(getattr(self, s.name), f.name))
                for s in fields(self) for f in fields(getattr(self, s.name))]

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        from facevae.io import atomic_write_text

        atomic_write_text(Path(path), self.to_yaml())

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "RunConfig":
        return _build(cls, raw or {}, prefix="").validate()

    @classmethod
    def from_yaml(cls, text: str) -> "RunConfig":
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise FacevaeError(f"config is not valid YAML ({e.__class__.__name__}); fix the file") from None
        if raw is not None and not isinstance(raw, dict):
            raise FacevaeError("config must be a YAML mapping of sections (data, model, loss, train, sharp)")
        return cls.from_dict(raw)

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """A YAML file, or the name of a config shipped with facevae (e.g. "celeba64")."""
        p = Path(path)
        if not p.is_file():
            shipped = packaged_configs()
            if str(path) in shipped:
                p = shipped[str(path)]
            else:
                raise FacevaeError(f"config file {p} does not exist: pass a YAML file or one of "
                                   f"{', '.join(sorted(shipped))}")
        return cls.from_yaml(p.read_text())

    def override(self, assignments: list[str]) -> "RunConfig":
        """Apply `section.key=value` strings (values parsed as YAML)."""
        raw = self.to_dict()
        for item in assignments:
            key, sep, value = item.partition("=")
            parts = key.strip().split(".")
            if not sep or len(parts) != 2:
                raise FacevaeError(f"--set {item!r} must look like section.key=value, e.g. model.latent_dim=64")
            section, name = parts
            if section not in raw or name not in raw[section]:
                raise FacevaeError(f"unknown config key {key!r}{did_you_mean(key, all_keys())}; "
                           f"valid keys: {', '.join(all_keys())}")
            raw[section][name] = yaml.safe_load(value) if value.strip() else ""
        return RunConfig.from_dict(raw)


def choices(key: str) -> list[str]:
    """The valid names of an enumerated field."""
    return list(CHOICES[key])


def check_choice(key: str, value: Any) -> None:
    if key in CHOICES and value not in choices(key):
        raise FacevaeError(f"unknown {key} {value!r}{did_you_mean(value, choices(key))}; "
                           f"choose one of: {', '.join(choices(key))}")


def check_limits(key: str, value: Any) -> None:
    """One field against LIMITS (and finiteness); a FacevaeError saying what is allowed."""
    if isinstance(value, tuple) and key in LIMITS and not value:
        raise FacevaeError(f"config key {key!r} is empty: give at least one value, e.g. --set {key}=[32,64,128]")
    for v in value if isinstance(value, tuple) else (value,):
        if isinstance(v, float) and not math.isfinite(v):
            raise FacevaeError(f"config key {key!r} must be a finite number, got {v}: set it with --set {key}=VALUE")
        rules = LIMITS.get(key, "")
        for rule in filter(None, rules.split(",")):
            op, bound = rule.split()
            if not _COMPARE[op](v, float(bound)):
                raise FacevaeError(f"config key {key!r} must be {rules}, got {value!r}: "
                                   f"set it with --set {key}=VALUE")


def packaged_configs() -> dict[str, Path]:
    from importlib import resources

    folder = Path(str(resources.files("facevae") / "configs"))
    return {p.stem: p for p in folder.glob("*.yaml")}


def all_keys() -> list[str]:
    return [f"{s.name}.{f.name}" for s in fields(RunConfig) for f in fields(s.default_factory)]


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise FacevaeError(f"config section {prefix.rstrip('.')!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        key = prefix + unknown[0]
        raise FacevaeError(f"unknown config key {key!r}{did_you_mean(key, all_keys())}; "
                           f"valid keys: {', '.join(all_keys())}")
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value or {}, prefix=f"{name}.")
        else:
            values[name] = _coerce(value, hint, prefix + name)
    return replace(cls(), **values)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    try:
        if origin is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
            return tuple(int(v) for v in value)
        if origin in (typing.Union, types.UnionType):
            return value
        if hint is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, (bool, int)):
                return bool(value)
            raise ValueError
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise FacevaeError(f"config key {key!r} expects {getattr(hint, '__name__', hint)}, got {value!r}")
