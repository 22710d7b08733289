"""KUnit results: kunit.py's JSON for the status of each case, the KTAP console log for why.

kunit.py --json writes KernelCI-style groups (one per suite) with a status per case
but no reasons, so the skip reason (`ok 7 name # SKIP reason`) and the diagnostic
lines of a failed case (`# name: EXPECTATION FAILED at file:line`, `Expected ...`)
come from the raw console log kunit.py leaves as <build_dir>/test.log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kseries.core.errors import KseriesError
from kseries.kernel import ktap
from kseries.kernel.ktap import TestResult

# A case's status in our reports: KTAP's statuses mapped as ktap.OUTCOME explains.
CaseStatus = ktap.Outcome
JSON_STATUS: dict[str, CaseStatus] = {"PASS": "pass", "FAIL": "fail", "SKIP": "skip",
                                      "ERROR": "error"}
MAX_DIAGNOSTICS = 12


@dataclass(frozen=True)
class CaseResult:
    """One KUnit case: its status, the skip reason, and the lines it logged."""

    suite: str
    name: str
    status: CaseStatus
    reason: str = ""
    diagnostics: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.suite}.{self.name}"

    def summary(self) -> str:
        """One line: what a reader of the report wants to know about this case."""
        if self.status == "pass":
            return "passed"
        if self.status == "skip":
            return f"SKIP: {self.reason}" if self.reason else "SKIP (no reason given)"
        lines = list(self.diagnostics)
        first = next((i for i, line in enumerate(lines) if "FAILED" in line), 0)
        detail = " | ".join(lines[first:first + 4]) or "no diagnostics"
        verdict = "crashed or timed out" if self.status == "error" else "failed"
        return f"{verdict}: {detail}"


def parse_json(text: str) -> list[tuple[str, str, CaseStatus]]:
    """(suite, case, status) for every case in kunit.py's --json output."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise KseriesError(f"kunit.py wrote JSON that does not parse: {err}") from None
    if not isinstance(data, dict):
        raise KseriesError("kunit.py JSON is not an object")
    return list(_json_cases(data, ""))


def _json_cases(group: dict[str, Any], suite: str) -> Iterator[tuple[str, str, CaseStatus]]:
    for case in group.get("test_cases", []):
        status = JSON_STATUS.get(str(case.get("status")), "fail")
        yield suite, str(case.get("name")), status
    for sub in group.get("sub_groups", []):
        yield from _json_cases(sub, str(sub.get("name")))


def console_cases(text: str) -> dict[tuple[str, str], TestResult]:
    """Per (suite, case): what the KTAP console log says, the suite the log ended in too."""
    return {(suite.name, case.name): case for suite in ktap.parse(text).tests()
            for case in suite.children}


def merge(json_cases: list[tuple[str, str, CaseStatus]],
          console: Mapping[tuple[str, str], TestResult]) -> list[CaseResult]:
    """The JSON's statuses with the console log's skip reasons and (last) diagnostics."""
    results = []
    for suite, name, status in json_cases:
        seen = console.get((suite, name))
        reason = seen.reason if seen and seen.outcome == "skip" else ""
        diagnostics = seen.diagnostics[-MAX_DIAGNOSTICS:] if seen else ()
        results.append(CaseResult(suite, name, status, reason, diagnostics))
    return results


def missing_cases(results: list[CaseResult], suite: str,
                  expected: Iterable[str]) -> list[CaseResult]:
    """An 'error' result for every expected case of SUITE that did not report at all."""
    seen = {r.name for r in results if r.suite == suite}
    return [CaseResult(suite, name, "error", "",
                       ("no result: the kernel crashed, hung or never ran the suite",))
            for name in expected if name not in seen]


def case_names(source: str) -> list[str]:
    """The KUNIT_CASE(...) names of a KUnit suite's C source, in order."""
    return re.findall(r"KUNIT_CASE(?:_SLOW)?\(\s*(\w+)\s*\)", source)


def suite_name(source: str) -> str | None:
    """The .name of the (first) struct kunit_suite in a C source."""
    match = re.search(r"struct kunit_suite\s+\w+\s*=\s*\{[^}]*?\.name\s*=\s*\"([^\"]+)\"",
                      source, re.DOTALL)
    return match.group(1) if match else None
