"""One line before a slow step and one after it, so no phase runs for minutes in silence."""
from __future__ import annotations

import contextlib
import sys
import time


@contextlib.contextmanager
def phase(what: str, enabled: bool = True):
    """'what ...' on stderr, then 'what: done in 12.3 s' (nothing when not enabled)."""
    if not enabled:
        yield
        return
    print(f"{what} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"{what}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def fit_line(sampler, n: int) -> str:
    """'fitting the two_stage sampler (steps=4000) on 24,000 latents'."""
    options = ", ".join(f"{k}={v}" for k, v in sampler.options().items() if k in ("components", "steps"))
    return f"fitting the {sampler.name} sampler{f' ({options})' if options else ''} on {n:,} latents"
