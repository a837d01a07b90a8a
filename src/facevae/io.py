"""Atomic file writes (a kill at any moment leaves the previous file intact) and the user cache folder."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def _file_mode() -> int:
    # some writers (safetensors) create files 0600; outputs should follow the umask like open() does
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def user_cache(*parts: str) -> Path:
    """A folder under $FACEVAE_CACHE (unset or empty: ~/.cache/facevae), with `~` expanded.

    The one reader of that variable, so the image cache, FID statistics, latents and
    fitted samplers of the bundled model all land under the same root.
    """
    root = os.environ.get("FACEVAE_CACHE") or "~/.cache/facevae"
    return Path(root).expanduser().joinpath(*parts)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temp file beside `path`, fsync it, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh unique name, not mkstemp: mkstemp's 0600 mode would stick to the final file
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))

