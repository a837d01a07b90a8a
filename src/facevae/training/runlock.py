"""One writer per run folder: an exclusive lock that the OS releases when its holder dies.

The lock file holds the holder's PID and is removed when the holder leaves (a clean
exit, an error or Ctrl-C), so a finished run folder holds no stale `.lock`. Removing
a locked file is racy unless every taker checks, once it holds the lock, that the
path still names the file it locked: a writer that opened the file just before its
holder removed it would otherwise lock a nameless file, and a third writer a new one.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from facevae.errors import FacevaeError
from facevae.runfolder import RunFolder


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold the run folder's lock for the block; a second writer gets a FacevaeError naming the holder."""
    path = RunFolder(run_dir).lock
    fd = _acquire(path, run_dir)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if _names(path, fd):  # still ours: a user may have deleted it, and another writer made a new one
            path.unlink(missing_ok=True)  # before the close, so no one can lock this file once it is free
        os.close(fd)  # closing the last descriptor releases the lock


def _acquire(path: Path, run_dir: Path) -> int:
    """A descriptor of `path` holding its exclusive lock, retried while the holder removes the file under us."""
    import fcntl  # POSIX; facevae trains on Linux and macOS

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FacevaeError(f"another facevae process (PID {holder}) is writing to {run_dir}: wait for it "
                               "to finish, or choose another --out") from None
        if _names(path, fd):
            return fd
        os.close(fd)  # the previous holder removed this file as it left: lock the path's file instead


def _names(path: Path, fd: int) -> bool:
    """Whether `path` is still the file open as `fd`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
