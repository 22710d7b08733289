"""What a run does, as JSON lines (`kseries --events FILE ...`): the start and end of every
stage and of every external command, with durations and cache hits, for a CI log parser or
`make bench` to read, while the progress lines on stderr are for people.

Events go through the logging module (the "kseries.events" logger): without --events it has
no handler and emit() costs a dict; with it, every event is one line, flushed as it happens
(a run that is killed still leaves what it did).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

EVENTS = logging.getLogger("kseries.events")


def emit(kind: str, **fields: Any) -> None:
    """One event: KIND (e.g. "stage-start", "command-end", "cache-hit") and its fields."""
    if EVENTS.handlers:
        EVENTS.info(kind, extra={"event": {"event": kind, **fields}})


@contextmanager
def span(kind: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """KIND-start, then KIND-end with duration_s (and whatever the body put in the dict it
    gets, e.g. a status), even when the body raises."""
    emit(f"{kind}-start", **fields)
    extra: dict[str, Any] = {}
    start = time.monotonic()
    try:
        yield extra
    finally:
        emit(f"{kind}-end", **fields, **extra, duration_s=round(time.monotonic() - start, 3))


class JsonLines(logging.Handler):
    """Appends each event record to a file as one JSON object per line."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        event: Mapping[str, Any] = getattr(record, "event", {"event": record.getMessage()})
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        self.stream.write(json.dumps({"time": stamp, **event}, default=str) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()
        super().close()


def record_events(path: Path) -> None:
    """Send every event of this process to PATH (appended; the directory is made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in EVENTS.handlers:
        old.close()
    EVENTS.handlers[:] = [JsonLines(path.open("a", encoding="utf-8"))]
    EVENTS.setLevel(logging.INFO)
    EVENTS.propagate = False


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of PATH, in order (for bench and tests)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
