"""The verify report: one result per stage and per check (NIPA style), written as JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "skip"]
SEVERITY: dict[str, int] = {"pass": 0, "skip": 1, "warn": 2, "fail": 3}


@dataclass(frozen=True)
class Check:
    """One check inside a stage: a status, a one-line summary, where to look, how to redo it."""

    name: str
    status: Status
    summary: str
    duration_s: float = 0.0
    log: str | None = None
    reproducer: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    status: Status
    summary: str
    duration_s: float
    checks: tuple[Check, ...] = ()
    log: str | None = None
    reproducer: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def worst(statuses: Sequence[Status]) -> Status:
    """The most severe status; no statuses at all is a pass."""
    return max(statuses, key=lambda s: SEVERITY[s]) if statuses else "pass"


def stage_from_checks(name: str, checks: list[Check], duration_s: float, summary: str = "",
                      **extra: Any) -> Stage:
    status = worst([c.status for c in checks])
    if not summary:
        failing = [c for c in checks if c.status == status and status != "pass"]
        summary = failing[0].summary if failing else f"{len(checks)} checks passed"
    return Stage(name, status, summary, duration_s, tuple(checks), **extra)


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yields a one-element list that holds the elapsed seconds once the block ends."""
    holder = [0.0]
    start = time.monotonic()
    try:
        yield holder
    finally:
        holder[0] = round(time.monotonic() - start, 3)


@dataclass
class Report:
    """Collects stage results and writes <out>/report.json."""

    series: str
    revision: str
    tree: str
    stages: list[Stage] = field(default_factory=list)

    @property
    def status(self) -> Status:
        """Worst of the stages that ran; a reasoned skip does not fail the run."""
        ran = [s.status for s in self.stages if s.status != "skip"]
        return worst(ran) if ran else "skip"

    def add(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        return stage

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "revision": self.revision,
            "tree": self.tree,
            "status": self.status,
            "stages": [asdict(s) for s in self.stages],
        }

    def write(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "report.json"
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        return path

    def summary_lines(self) -> list[str]:
        lines = [f"{s.status.upper():5} {s.name:10} {s.summary} ({s.duration_s:.1f} s)"
                 for s in self.stages]
        lines.append(f"overall: {self.status.upper()}")
        return lines


def update_report(out: Path, stage: Stage, series: str, revision: str, tree: str) -> Path:
    """Put STAGE into <out>/report.json, replacing an older result of the same stage.

    Standalone subcommands (kseries callers, build, ...) use this so that their result
    sits beside what verify wrote instead of replacing it.
    """
    path = out / "report.json"
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    stages = [s for s in data.get("stages", []) if s.get("name") != stage.name]
    stages.append(asdict(stage))
    report = {"series": series, "revision": revision, "tree": tree, "stages": stages}
    ran = [s["status"] for s in stages if s["status"] != "skip"]
    report["status"] = worst(ran) if ran else "skip"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
