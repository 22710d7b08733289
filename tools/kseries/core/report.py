"""The run report: one result per stage and per check (NIPA style), kept in <out>/report.json.

This module is the single source of truth for statuses: how checks add up to a stage and
stages to a run, and which exit code a run ends with. Every stage and subcommand uses it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, get_args

Status = Literal["pass", "warn", "fail", "skip", "error"]
STATUSES: tuple[Status, ...] = get_args(Status)
# error (a fault of the machine or of kseries) > fail > warn > pass > skip: a reasoned skip
# never hides a pass beside it, and nothing hides an infrastructure error.
SEVERITY: Mapping[Status, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3, "error": 4}
SCHEMA_VERSION = 2
REPORT_NAME = "report.json"

# The exit codes of every kseries command (NIPA's retcode contract, plus the usual 2 and 130).
EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_WARN = 250
EXIT_INTERRUPTED = 130
EXIT_FOR: Mapping[Status, int] = {"pass": EXIT_PASS, "skip": EXIT_PASS, "warn": EXIT_WARN,
                                  "fail": EXIT_FAIL, "error": EXIT_ERROR}


@dataclass(frozen=True, kw_only=True)
class Check:
    """One check inside a stage: a status, a one-line summary, where to look, how to redo it.

    ARCH, STEP and RULE say what the check is about (e.g. arm64 / patch 2 / new-warning)
    so that exporters need not parse them back out of NAME.
    """

    name: str
    status: Status
    summary: str
    duration_s: float = 0.0
    log: str | None = None
    reproducer: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    arch: str | None = None
    step: str | None = None
    rule: str | None = None


@dataclass(frozen=True, kw_only=True)
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
    """The run or stage status of STATUSES; none at all is a skip (nothing was checked)."""
    return max(statuses, key=lambda s: SEVERITY[s]) if statuses else "skip"


def stage_from_checks(name: str, checks: Sequence[Check], duration_s: float, summary: str = "",
                      **extra: Any) -> Stage:
    """A stage whose status is the aggregate of its checks (the one rule, see worst())."""
    status = worst([c.status for c in checks])
    if not summary:
        failing = [c for c in checks if c.status == status and status not in ("pass", "skip")]
        passed = sum(1 for c in checks if c.status == "pass")
        summary = failing[0].summary if failing else f"{passed} of {len(checks)} checks passed"
    return Stage(name=name, status=status, summary=summary, duration_s=duration_s,
                 checks=tuple(checks), **extra)


def exit_code(status: Status) -> int:
    return EXIT_FOR[status]


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yields a one-element list that holds the elapsed seconds once the block ends."""
    holder = [0.0]
    start = time.monotonic()
    try:
        yield holder
    finally:
        holder[0] = round(time.monotonic() - start, 3)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def kseries_version() -> str:
    try:
        return metadata.version("kseries")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Report:
    """Stage results of one series revision on one tree; written after every stage."""

    series: str
    revision: str
    tree: str
    stages: list[Stage] = field(default_factory=list)
    started: str = field(default_factory=utc_now)
    ended: str | None = None
    interrupted: bool = False
    tools: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return worst([s.status for s in self.stages])

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.interrupted else exit_code(self.status)

    def add(self, stage: Stage) -> Stage:
        """Put STAGE in, replacing an earlier result of the same stage (runs merge)."""
        self.stages = [s for s in self.stages if s.name != stage.name] + [stage]
        return stage

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def same_subject(self, other: Report) -> bool:
        return (self.series, self.revision, self.tree) == (other.series, other.revision,
                                                           other.tree)

    def to_json(self) -> dict[str, Any]:
        applied = self.stage("apply")
        data = applied.data if applied is not None else {}
        return {
            "schema_version": SCHEMA_VERSION,
            "kseries_version": kseries_version(),
            "series": self.series,
            "revision": self.revision,
            "tree": self.tree,
            "base": data.get("base"),
            "head": data.get("head"),
            "status": self.status,
            "exit_code": self.exit_code,
            "started": self.started,
            "ended": self.ended,
            "interrupted": self.interrupted,
            "tools": dict(sorted(self.tools.items())),
            "stages": [asdict(s) for s in self.stages],
        }

    def write(self, out: Path) -> Path:
        """Write <out>/report.json atomically: a reader never sees half a report."""
        return write_json_atomic(out / REPORT_NAME, self.to_json())

    def summary_lines(self, names: Sequence[str] | None = None) -> list[str]:
        """One line per stage (of NAMES, default all) and the overall status of those."""
        shown = [s for s in self.stages if names is None or s.name in names]
        lines = [f"{s.status.upper():5} {s.name:10} {s.summary} ({s.duration_s:.1f} s)"
                 for s in shown]
        state = " (interrupted)" if self.interrupted else ""
        lines.append(f"overall: {worst([s.status for s in shown]).upper()}{state}")
        return lines


def write_json_atomic(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_report(out: Path) -> Report | None:
    """The report already in OUT, or None when there is none we can read (or an old schema)."""
    try:
        data = json.loads((out / REPORT_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        return None
    try:
        stages = [stage_from_json(s) for s in data.get("stages", [])]
        return Report(str(data["series"]), str(data["revision"]), str(data["tree"]), stages,
                      started=str(data.get("started") or utc_now()),
                      tools={str(k): str(v) for k, v in dict(data.get("tools", {})).items()})
    except (KeyError, TypeError, ValueError):
        return None


def stage_from_json(data: Mapping[str, Any]) -> Stage:
    known = {f.name for f in fields(Stage)} - {"checks"}
    checks = tuple(check_from_json(c) for c in data.get("checks", []))
    stage = Stage(**{k: v for k, v in data.items() if k in known}, checks=checks)
    if stage.status not in STATUSES:
        raise ValueError(f"unknown status {stage.status!r}")
    return stage


def check_from_json(data: Mapping[str, Any]) -> Check:
    known = {f.name for f in fields(Check)}
    check = Check(**{k: v for k, v in data.items() if k in known})
    if check.status not in STATUSES:
        raise ValueError(f"unknown status {check.status!r}")
    return check
