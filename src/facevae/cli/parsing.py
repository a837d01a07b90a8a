"""Turning option text into values: attribute weights and strengths (the flags are named in the errors)."""
from __future__ import annotations

import math
from typing import Sequence

from facevae.errors import FacevaeError


def parse_attribute_weights(items: Sequence[str]) -> list[tuple[str, float]]:
    """['Smiling=1.5', 'Eyeglasses'] -> [('Smiling', 1.5), ('Eyeglasses', 1.0)]."""
    out = []
    for item in items:
        name, sep, weight = item.partition("=")
        if not name.strip():
            raise FacevaeError(f"--attribute {item!r} needs a name, e.g. Smiling or Smiling=1.5")
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            raise FacevaeError(f"--attribute {item!r}: the weight after '=' must be a number, "
                               "e.g. Smiling=1.5") from None
        if not math.isfinite(w):
            raise FacevaeError(f"--attribute {item!r}: the weight must be a finite number, e.g. Smiling=1.5")
        out.append((name.strip(), w))
    if not out:
        raise FacevaeError("give at least one --attribute NAME (e.g. --attribute Smiling)")
    return out


def parse_strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise FacevaeError(f"--strengths {text!r} must be comma-separated numbers, e.g. -3,-1.5,0,1.5,3") from None
    if not all(math.isfinite(v) for v in values):
        raise FacevaeError(f"--strengths {text!r} holds a value that is not a finite number: e.g. -3,-1.5,0,1.5,3")
    if not values:
        raise FacevaeError("--strengths is empty: give comma-separated numbers, e.g. -3,-1.5,0,1.5,3")
    return values
