"""One writer per run folder: an exclusive lock that the OS releases when its holder dies."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from facevae.errors import FacevaeError

LOCK = ".lock"  # holds the PID of the process writing the run


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold the run folder's lock for the block; a second writer gets a FacevaeError naming the holder."""
    import fcntl  # POSIX; facevae trains on Linux and macOS

    path = Path(run_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FacevaeError(f"another facevae process (PID {holder}) is writing to {run_dir}: wait for it "
                           "to finish, or choose another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
