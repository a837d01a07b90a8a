"""Exact float32 inside a block: TF32 off for one CUDA backend, the caller's choice restored after."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def ieee_float32(flags: Any, legacy: Any) -> Iterator[None]:
    """TF32 off on a backend's flags (e.g. torch.backends.cuda.matmul, torch.backends.cudnn.conv).

    torch >= 2.9 has `flags.fp32_precision`; older torch has only `legacy.allow_tf32`.
    Reading the legacy flag after fp32_precision was set raises, so only one is touched.
    """
    target, attr, exact = ((flags, "fp32_precision", "ieee") if hasattr(flags, "fp32_precision")
                           else (legacy, "allow_tf32", False))
    saved = getattr(target, attr)
    setattr(target, attr, exact)
    try:
        yield
    finally:
        setattr(target, attr, saved)
