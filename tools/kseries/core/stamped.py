"""Small JSON caches keyed by a stamp (a hash of what the answers depend on), holding the
answers of the last few stamps: one build dir serves configs that alternate (the base's and
a series head's), and a cache that held only the last stamp was rebuilt at every switch."""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path
from typing import Any

KEPT = 8


def load(path: Path, stamp: str) -> Any | None:
    """What was saved in PATH for STAMP, or None."""
    with suppress(FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return _entries(path)[stamp]
    return None


def save(path: Path, stamp: str, data: Any, kept: int = KEPT) -> None:
    """Save DATA for STAMP in PATH (atomically), the newest last, keeping KEPT stamps."""
    entries: dict[str, Any] = {}
    with suppress(FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        entries = _entries(path)
    entries.pop(stamp, None)
    entries[stamp] = data
    kept_entries = dict(list(entries.items())[-kept:])
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"by_stamp": kept_entries}))
    partial.replace(path)


def _entries(path: Path) -> dict[str, Any]:
    found = json.loads(path.read_text())["by_stamp"]
    if not isinstance(found, dict):
        raise TypeError(path)
    return found
