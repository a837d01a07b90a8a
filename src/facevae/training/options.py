"""The named training choices (optimizer, learning-rate schedule, precision), as registries.

facevae.config.CHOICES repeats these names as literals, so checking a config imports
nothing; tests/test_config.py keeps the two equal.
"""
from __future__ import annotations

import math

import torch


def _constant(step: int, total: int) -> float:
    return 1.0


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULES = {"constant": _constant, "cosine": _cosine}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
