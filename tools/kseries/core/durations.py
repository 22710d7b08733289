"""How long a named step took last time (<cache>/durations.json), for the heartbeat's time
left: a kernel build, a KUnit build, a guest. Best effort: a missing or damaged file means
no estimate, never a failure."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kseries.core.proc import run

FILE = "durations.json"


def previous(cache: Path, key: str) -> float | None:
    try:
        value = json.loads((cache / FILE).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def remember(cache: Path, key: str, seconds: float) -> None:
    """Record KEY's duration (atomically: two runs never leave half a file)."""
    path = cache / FILE
    try:
        known = json.loads(path.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    known[key] = round(seconds, 1)
    cache.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=cache, prefix=".durations.")
    with os.fdopen(fd, "w") as stream:
        json.dump(known, stream, indent=1, sort_keys=True)
    os.replace(scratch, path)


def timed_run(cache: Path, key: str, cmd: Sequence[str | Path],
              **options: Any) -> subprocess.CompletedProcess[str]:
    """proc.run with the last run's duration of KEY as its expected time; a success
    becomes KEY's new duration."""
    start = time.monotonic()
    proc = run(cmd, expected_s=previous(cache, key), **options)
    if proc.returncode == 0:
        remember(cache, key, time.monotonic() - start)
    return proc
