"""How much memory a model needs, worked out from its `ModelConfig` before anything is allocated.

A config too large for the machine is a user error: asking the allocator first ends in a
RuntimeError traceback (or the OOM killer). The caller measures the memory and passes it in.
"""
from __future__ import annotations

from dataclasses import replace

from facevae.config import ModelConfig
from facevae.errors import FacevaeError

# parameters per channel of each model.norm (BatchNorm's running statistics are buffers, not parameters)
NORM_PARAMETERS = {"batch": 2, "group": 2, "none": 0}
FLOAT = 4  # bytes: weights, gradients and optimizer state are float32 whatever the autocast precision
# float32 copies per parameter while training: weights, gradients, Adam's two moments (+ EMA weights)
TRAIN_COPIES, EMA_COPIES = 4, 1
# tensors autograd keeps per feature map: conv, norm and activation outputs of a stage, twice that in a ResBlock
STAGE_TENSORS, RESBLOCK_TENSORS = 3, 6
GB = 1e9


def _conv(c_in: int, c_out: int) -> int:
    return 9 * c_in * c_out + c_out  # 3x3 kernel and bias, strided or transposed alike


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _stage(c_in: int, c_out: int, cfg: ModelConfig) -> int:
    norm = NORM_PARAMETERS[cfg.norm] * c_out
    blocks = cfg.res_blocks if cfg.block == "resnet" else 0
    return _conv(c_in, c_out) + norm + blocks * (2 * _conv(c_out, c_out) + 2 * norm)


def _side(cfg: ModelConfig) -> int:
    return cfg.image_size // 2 ** len(cfg.widths)


def parameter_count(cfg: ModelConfig) -> int:
    """sum(p.numel() for p in build_model(cfg).parameters()), without building it."""
    enc_chans = (3, *cfg.widths)
    dec_chans = (*reversed(cfg.widths), cfg.widths[0])
    flat = cfg.widths[-1] * _side(cfg) ** 2
    head = _linear(flat, cfg.latent_dim * (1 if cfg.kind == "ae" else 2))
    stages = sum(_stage(a, b, cfg) for chans in (enc_chans, dec_chans) for a, b in zip(chans, chans[1:]))
    return stages + head + _linear(cfg.latent_dim, flat) + _conv(cfg.widths[0], 3) + int(cfg.learned_sigma)


def feature_maps(cfg: ModelConfig) -> list[tuple[int, int]]:
    """(channels, side) of each stage's output, encoder then decoder."""
    enc = [(w, cfg.image_size // 2 ** (i + 1)) for i, w in enumerate(cfg.widths)]
    dec_chans = (*reversed(cfg.widths[:-1]), cfg.widths[0])
    dec = [(c, _side(cfg) * 2 ** (i + 1)) for i, c in enumerate(dec_chans)]
    return enc + dec


def activation_count(cfg: ModelConfig) -> int:
    """Numbers autograd keeps for one image's training step (a rough lower bound, not an exact count)."""
    per_map = STAGE_TENSORS + (RESBLOCK_TENSORS * cfg.res_blocks if cfg.block == "resnet" else 0)
    maps = sum(c * side * side for c, side in feature_maps(cfg))
    return per_map * maps + 3 * 3 * cfg.image_size ** 2 + 4 * cfg.latent_dim  # + image, logits, recon; latents


def needed_bytes(cfg: ModelConfig, batch_size: int = 0, ema: bool = False) -> tuple[int, int]:
    """(weights and their training state, activations of one batch); batch_size 0: the weights alone."""
    copies = TRAIN_COPIES + (EMA_COPIES if ema else 0) if batch_size else 1
    return FLOAT * copies * parameter_count(cfg), FLOAT * batch_size * activation_count(cfg)


def check_fits(cfg: ModelConfig, available: int | None, batch_size: int = 0, ema: bool = False,
               where: str = "this machine") -> None:
    """A FacevaeError when the model needs more than `available` bytes (None: unknown, nothing checked).

    batch_size > 0: training (weights, gradients, Adam state, EMA weights, one batch's activations);
    0: loading the weights for inference.
    """
    state, activations = needed_bytes(cfg, batch_size, ema)
    if available is None or state + activations <= available:
        return
    size = f"about {_gb(state + activations)} GB"
    if not batch_size:
        raise FacevaeError(f"the checkpoint's model ({_culprit(cfg)}) needs {size} for its weights; {where} has "
                           f"{_gb(available)} GB: load it on a machine with more memory or pick another --ckpt")
    if activations > state:
        raise FacevaeError(f"train.batch_size={batch_size} needs {size} for one batch's activations and the "
                           f"weights; {where} has {_gb(available)} GB: "
                           f"{_batch_advice(available, state, activations, batch_size)}")
    advice = _latent_advice(cfg, available, batch_size, ema) if _latent_heavy(cfg) else "use smaller model.widths"
    raise FacevaeError(f"{_culprit(cfg)} needs {size} for weights and Adam state; {where} has "
                       f"{_gb(available)} GB: {advice}")


def _latent_heavy(cfg: ModelConfig) -> bool:
    """Whether most parameters grow with model.latent_dim (encoder head, decoder input) rather than the widths."""
    return 2 * parameter_count(replace(cfg, latent_dim=0)) < parameter_count(cfg)


def _culprit(cfg: ModelConfig) -> str:
    if _latent_heavy(cfg):
        return f"model.latent_dim={cfg.latent_dim}"
    return f"model.widths=[{','.join(map(str, cfg.widths))}]"


def _latent_advice(cfg: ModelConfig, available: int, batch_size: int, ema: bool) -> str:
    # the bytes needed grow linearly with latent_dim, so the largest that fits is one division
    base = sum(needed_bytes(replace(cfg, latent_dim=0), batch_size, ema))
    per_dim = sum(needed_bytes(replace(cfg, latent_dim=1), batch_size, ema)) - base
    most = (available - base) // per_dim
    if most < 1:
        return "use a smaller model.latent_dim and smaller model.widths"
    return f"use model.latent_dim={min(most, cfg.latent_dim - 1)} or less"


def _batch_advice(available: int, state: int, activations: int, batch_size: int) -> str:
    # activations grow linearly with the batch; the weights' share does not
    most = (available - state) * batch_size // activations
    if most < 1:
        return "use smaller model.widths or a smaller model.image_size"
    return f"use train.batch_size={min(most, batch_size - 1)} or less (or smaller model.widths)"


def _gb(n: float) -> str:
    return f"{n / GB:,.0f}" if n >= 10 * GB else f"{n / GB:.1f}"
