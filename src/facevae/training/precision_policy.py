"""Which precision a run's steps use on its device: the autocast dtype, loss scaling, and why.

`train.precision` is a wish; the device decides what it gets. bf16 falls back to
fp16 on GPUs without fast bf16 convolutions and to fp32 on CPUs without native
bf16, because a slow path would cost more than the precision saves.
"""
from __future__ import annotations

import contextlib

import torch

from facevae.errors import FacevaeError
from facevae.training.options import PRECISIONS


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None means fp32.

    On CPU only bf16 is used, and only where oneDNN runs it natively (AVX512-BF16 or
    AMX): there it nearly doubles a step's speed; emulated bf16 or fp16 would be slower than fp32.
    """
    if precision not in PRECISIONS:
        raise FacevaeError(f"unknown train.precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if device.type == "cuda" and dtype is torch.bfloat16 and not fast_cuda_bf16(device):
        return torch.float16
    if device.type == "cuda" or dtype is None:
        return dtype
    if device.type == "cpu" and dtype is torch.bfloat16 and native_cpu_bf16():
        return dtype
    return None


def fast_cuda_bf16(device: torch.device) -> bool:
    """cuDNN runs bf16 convolutions natively from compute capability 8.0 (Ampere); T4 and V100 take a slow path."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def native_cpu_bf16() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 only: its narrow exponent underflows small gradients; bf16 and fp32 need none."""
    return torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)


def autocast(dtype: torch.dtype | None, device: torch.device):
    """The autocast context for `dtype` (from autocast_dtype); None runs the block in fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def fallback_note(precision: str, device: torch.device) -> str | None:
    """The note a CUDA run prints when its GPU trains a bf16 config in fp16 instead; None otherwise."""
    if device.type != "cuda" or autocast_dtype(precision, device) is PRECISIONS[precision]:
        return None
    capability = ".".join(map(str, torch.cuda.get_device_capability(device)))
    return (f"note: compute capability {capability} runs bf16 convolutions on a slow path: training in fp16 "
            "with loss scaling instead")


def precision_line(precision: str, device: torch.device) -> str:
    """The precision the steps run in, with the reason when it is not the one asked for."""
    used = autocast_dtype(precision, device)
    if used is PRECISIONS.get(precision):
        return precision
    reason = "is not native on this CPU" if precision == "bf16" else f"has no fast path on {device.type}"
    return f"fp32 ({precision} {reason})"
