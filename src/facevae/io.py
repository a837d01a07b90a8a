"""Atomic file writes (a kill at any moment leaves the previous file intact) and the user cache folder."""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Callable

from facevae.errors import FacevaeError

# the temp names atomic_write makes: ".NAME.<12 hex>.tmp" beside NAME
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


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
    except OSError as e:  # a full disk or a read-only place: the previous file is still whole
        raise FacevaeError(f"cannot write {path} ({e.strerror or e}): free some space or choose a writable "
                           f"place; any previous {path.name} is untouched") from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_temp_files(folder: Path) -> int:
    """Delete the temp files that killed atomic writes left in `folder` (not below it); returns how many."""
    removed = 0
    for p in Path(folder).glob(".*.tmp"):
        if _TEMP_NAME.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def check_writable(path: Path, option: str = "--out", folder: bool = False) -> None:
    """Fail before any work when the file (or folder) `path` cannot be written.

    The folder that will hold the output is made and a probe file is tried in it: permission bits
    alone would pass a read-only mount, or anything at all for root.
    """
    path = Path(path)
    where = path if folder else path.parent
    blocker = next((a for a in (where, *where.parents) if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise FacevaeError(f"{option} {path} is under {blocker}, which is a file: choose another place")
    probe = where / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        where.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise FacevaeError(f"cannot write {option} {path} ({e.strerror or e}): choose a writable place") from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))

