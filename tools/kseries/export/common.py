"""What every exporter reads from report.json: stages and checks, the patch a check is about,
log paths (relative to the report's directory, or as URLs), names made safe for a format.

report.json is read as JSON (plain mappings), not through kseries.core.report: an exporter
must take a report written by another kseries version as long as the fields it reads are
there, and must not refuse a stage it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kseries.export import ExportSettings

Json = Mapping[str, Any]

# error > fail > warn > pass > skip, the rule of kseries.core.report.worst() (kept here as
# data: the exporters read reports, they do not judge them again).
SEVERITY: Mapping[str, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3, "error": 4}
# "patch 2" (apply, checks, vmtest --every-commit) and "patch-2" (the build stage's steps).
PATCH_STEP_RE = re.compile(r"^patch[ -](\d+)$")
UNSAFE_RE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Item:
    """One check of one stage, as report.json holds it, with the stage it belongs to."""

    stage: str
    check: Json

    @property
    def name(self) -> str:
        return str(self.check.get("name") or self.stage)

    @property
    def status(self) -> str:
        return status_of(self.check)

    @property
    def summary(self) -> str:
        return str(self.check.get("summary") or "")

    @property
    def arch(self) -> str | None:
        value = self.check.get("arch")
        return str(value) if value else None

    @property
    def step(self) -> str | None:
        value = self.check.get("step")
        return str(value) if value else None

    @property
    def rule(self) -> str | None:
        value = self.check.get("rule")
        return str(value) if value else None

    @property
    def duration(self) -> float:
        value = self.check.get("duration_s")
        return float(value) if isinstance(value, int | float) else 0.0

    @property
    def data(self) -> Json:
        return data_of(self.check)

    @property
    def patch(self) -> int | None:
        """The patch (1-based) this check is about, or None for a series-level check."""
        found = PATCH_STEP_RE.match(self.step or "")
        return int(found.group(1)) if found else None


def status_of(entry: Json) -> str:
    status = str(entry.get("status") or "error")
    return status if status in SEVERITY else "error"


def worst(statuses: Sequence[str]) -> str:
    return max(statuses, key=lambda s: SEVERITY.get(s, 4)) if statuses else "skip"


def data_of(entry: Json) -> Json:
    """The data mapping of a stage or check entry ({} when it has none)."""
    value = entry.get("data")
    return value if isinstance(value, Mapping) else {}


def stages(report: Json) -> list[Json]:
    value = report.get("stages")
    return [s for s in value if isinstance(s, Mapping)] if isinstance(value, list) else []


def stage(report: Json, name: str) -> Json | None:
    return next((s for s in stages(report) if s.get("name") == name), None)


def items(stage_entry: Json) -> list[Item]:
    """The checks of STAGE_ENTRY; a stage without checks (it raised, or it has none, like
    tree) is one item of its own, so that every stage appears in every format."""
    name = str(stage_entry.get("name") or "stage")
    checks = stage_entry.get("checks")
    found = [Item(name, c) for c in checks if isinstance(c, Mapping)] \
        if isinstance(checks, list) else []
    return found or [Item(name, stage_entry)]


def all_items(report: Json) -> Iterator[Item]:
    for entry in stages(report):
        yield from items(entry)


def safe(text: str, fallback: str = "unnamed") -> str:
    """TEXT as one name part of [A-Za-z0-9_-] (a KCIDB path part, a NIPA test dir, a slug)."""
    return UNSAFE_RE.sub("_", text).strip("_") or fallback


def one_line(text: str, limit: int = 255) -> str:
    """TEXT on one line, cut to LIMIT characters (with an ellipsis when cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 3].rstrip() + "..."


def log_file(settings: ExportSettings, log: object) -> Path | None:
    """A log as a path: report.json holds absolute paths; a relative one is taken relative
    to the report's directory."""
    if not isinstance(log, str) or not log:
        return None
    path = Path(log)
    return path if path.is_absolute() else settings.report_dir / path


def relative_log(settings: ExportSettings, log: object) -> str | None:
    """A log's path relative to the report's directory when it is under it, else as is."""
    path = log_file(settings, log)
    if path is None:
        return None
    try:
        return path.relative_to(settings.report_dir.resolve()).as_posix()
    except ValueError:
        try:
            return path.relative_to(settings.report_dir).as_posix()
        except ValueError:
            return str(path)


def log_url(settings: ExportSettings, log: object) -> str | None:
    """A log as an absolute URL: TARGET_URL/<path relative to the report dir> when a target
    URL is given and the log is under the report dir, else a file: URL of the local path."""
    path = log_file(settings, log)
    if path is None:
        return None
    relative = relative_log(settings, log)
    if settings.target_url and relative is not None and not Path(relative).is_absolute():
        return under_target(settings.target_url, relative)
    return path.resolve().as_uri() if not path.is_absolute() else path.as_uri()


def under_target(target_url: str, relative: str) -> str:
    """RELATIVE (a path under the report dir) as a URL under TARGET_URL, percent-encoded."""
    return f"{target_url.rstrip('/')}/{quote(relative)}"


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
