"""A small TAP 13 / KTAP parser for kselftest-style output (flat, as our guest prints it).

Diagnostic lines ("# ...") printed before a result line belong to that result, as
kselftest prints them. Lines that are neither (console noise) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TestStatus = Literal["pass", "fail", "skip"]

VERSION_RE = re.compile(r"^(?:TAP version 13|KTAP version 1)$")
PLAN_RE = re.compile(r"^1\.\.(\d+)$")
RESULT_RE = re.compile(r"^(ok|not ok) (\d+)(?: -)? ?([^#]*?)\s*(?:# *(SKIP|TODO|XFAIL)\b\s*(.*))?$",
                       re.IGNORECASE)
DIAGNOSTIC_RE = re.compile(r"^# ?(.*)$")
BAIL_RE = re.compile(r"^Bail out!\s*(.*)$")


@dataclass(frozen=True)
class TestResult:
    number: int
    name: str
    status: TestStatus
    reason: str
    diagnostics: tuple[str, ...]


@dataclass(frozen=True)
class Ktap:
    version_seen: bool
    planned: int | None
    results: tuple[TestResult, ...]
    trailing: tuple[str, ...]
    bail_out: str | None

    @property
    def complete(self) -> bool:
        """A plan was printed and every planned result arrived."""
        return self.planned is not None and len(self.results) == self.planned

    def result(self, name: str) -> TestResult | None:
        return next((r for r in self.results if r.name == name), None)

    def missing(self) -> int:
        return max(0, (self.planned or 0) - len(self.results))


def parse(text: str) -> Ktap:
    version_seen = False
    planned: int | None = None
    results: list[TestResult] = []
    pending: list[str] = []
    bail: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r").strip()
        if VERSION_RE.match(line):
            version_seen = True
        elif plan := PLAN_RE.match(line):
            planned = int(plan.group(1))
        elif result := RESULT_RE.match(line):
            results.append(_result(result, tuple(pending)))
            pending = []
        elif diagnostic := DIAGNOSTIC_RE.match(line):
            pending.append(diagnostic.group(1))
        elif bail_match := BAIL_RE.match(line):
            bail = bail_match.group(1) or "bail out"
    return Ktap(version_seen, planned, tuple(results), tuple(pending), bail)


def _result(match: re.Match[str], diagnostics: tuple[str, ...]) -> TestResult:
    ok = match.group(1).lower() == "ok"
    directive = (match.group(4) or "").upper()
    reason = (match.group(5) or "").strip()
    status: TestStatus = "skip" if directive == "SKIP" else "pass" if ok else "fail"
    if status == "fail" and not reason and diagnostics:
        reason = diagnostics[-1]
    return TestResult(int(match.group(2)), match.group(3).strip(), status, reason, diagnostics)
