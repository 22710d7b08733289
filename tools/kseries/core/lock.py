"""One kseries run per cache dir at a time: every run shares the cache's scratch worktrees
and build dirs, so a second run waits for the first instead of checking out under it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_NAME = "kseries.lock"


def lock_path(cache: Path) -> Path:
    return cache / LOCK_NAME


def holder(path: Path) -> str:
    """Who holds the lock, as written by it ('pid N: command'), or '?'."""
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


@contextlib.contextmanager
def cache_lock(cache: Path, what: str, waiting: Callable[[str], None]) -> Iterator[None]:
    """Hold the cache's lock for the block; call WAITING once if another run holds it."""
    cache.mkdir(parents=True, exist_ok=True)
    path = lock_path(cache)
    with path.open("a+") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting(f"waiting for another kseries run on {cache} ({holder(path)})")
            fcntl.flock(stream, fcntl.LOCK_EX)
        stream.seek(0)
        stream.truncate()
        stream.write(f"pid {os.getpid()}: {what}\n")
        stream.flush()
        try:
            yield
        finally:
            stream.seek(0)
            stream.truncate()
            fcntl.flock(stream, fcntl.LOCK_UN)
