"""What a KUnit run means: one run's result (KunitRun) and the checks judged from runs.

Kept apart from stage.py, which runs kunit.py: these functions only read results, so the
unit tests exercise them on made-up runs without a kernel tree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from kseries.core.report import Check, Status
from kseries.stages.kunit.results import CaseResult
from kseries.stages.kunit.suite import SUITE_SOURCE

REQUIRED_ARCH = "x86_64"  # every case must run here; other arches may skip what they lack

Variant = Literal["series", "base", "commit"]  # commit: patch N of the series, not the last
# same-as-before: a commit that changes only another arch's files, not run again (its
# kernel is the one of the commit before, byte for byte)
Outcome = Literal["passed", "failed", "config-failed", "build-failed", "no-results",
                  "unavailable", "same-as-before"]


@dataclass(frozen=True)
class KunitRun:
    """One arch, with the series or on the base: what happened and every case's result."""

    arch: str
    variant: Variant
    outcome: Outcome
    summary: str
    cases: tuple[CaseResult, ...] = ()
    errors: tuple[str, ...] = ()
    accel: str = ""
    build_s: float = 0.0
    exec_s: float = 0.0
    log: str | None = None
    console_log: str | None = None
    command: str = ""
    patch: int = 0  # variant "commit": the run is at patch PATCH of the series

    @property
    def label(self) -> str:
        if self.variant == "commit":
            return f"{self.arch} at patch {self.patch}"
        return self.arch if self.variant == "series" else f"{self.arch} base"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cases"] = [{**asdict(c), "full_name": c.full_name} for c in self.cases]
        return data



def progression_check(arch: str, runs: list[KunitRun], reproducer: str) -> Check:
    """Which patch makes which case pass, on ARCH; fail when a case that passed at one patch
    fails at a later one, or when the suite does not build or run at some patch."""
    mine = [r for r in runs if r.arch == arch
            and r.outcome not in ("unavailable", "same-as-before")]
    same = [r.label for r in runs if r.arch == arch and r.outcome == "same-as-before"]
    name = f"{arch}: cases per patch"
    if not mine:
        return Check(name=name, status="skip", summary=f"the suite did not run on {arch}",
                     reproducer=reproducer, arch=arch, step="every-commit", rule="per-patch")
    broken = [r for r in mine if r.outcome not in ("passed", "failed")]
    fixed: dict[int, list[str]] = {}
    broke: list[str] = []
    passing: set[str] | None = None  # what passed at the run before
    for r in mine:
        now = {c.name for c in r.cases if c.status == "pass"}
        if passing is not None:
            failing = {c.name for c in r.cases if c.status in ("fail", "error")}
            broke += [f"{c} at patch {r.patch}" for c in sorted(passing & failing)]
        if passing is not None or r.variant != "base":
            fixed[r.patch] = sorted(now - (passing or set()))
        passing = now
    parts = [f"patch {n}: {', '.join(cases) or '-'}" for n, cases in fixed.items()]
    data = {"fixed_by_patch": {str(n): cases for n, cases in fixed.items()},
            "regressions": broke, "not_run": [r.label for r in broken],
            "same_as_before": same}
    if broken:
        status: Status = "fail"
        summary = f"the suite did not run at {', '.join(r.label for r in broken)}: " \
                  f"{broken[0].summary}"
    elif broke:
        status, summary = "fail", f"passed earlier, fails later: {', '.join(broke)}"
    else:
        status = "pass"
        start = "from the base" if mine[0].variant == "base" else "from patch 1"
        summary = f"newly passing {start}: " + "; ".join(parts)
    return Check(name=name, status=status, summary=summary, reproducer=reproducer, data=data,
                 arch=arch, step="every-commit", rule="per-patch")


def run_checks(r: KunitRun, reproducer: str) -> list[Check]:
    if r.variant == "commit":
        return []  # judged together by progression_check()
    if r.variant == "base":
        return [bite_check(r, reproducer)]
    required = r.arch == REQUIRED_ARCH
    if r.outcome == "unavailable":
        return [Check(name=r.label, status="fail" if required else "skip", summary=r.summary,
                      reproducer=reproducer, arch=r.arch, step=r.variant, rule="unavailable")]
    if r.outcome in ("config-failed", "build-failed", "no-results"):
        return [Check(name=f"{r.label}: run", status="fail", summary=r.summary,
                      duration_s=r.build_s + r.exec_s, log=r.log, reproducer=reproducer,
                      data={"errors": list(r.errors)}, arch=r.arch, step=r.variant,
                      rule=r.outcome)]
    checks = [Check(name=f"{r.label}: {c.full_name}", status=case_status(c), summary=c.summary(),
                    log=r.console_log, reproducer=reproducer,
                    data={"diagnostics": list(c.diagnostics)}, arch=r.arch, step=r.variant,
                    rule="kunit-case")
              for c in r.cases]
    if required and not any(c.status == "pass" for c in r.cases):
        checks.append(Check(name=f"{r.label}: suite ran", status="fail",
                            summary=f"no case passed on {r.arch}, the arch every case must run on",
                            log=r.console_log, reproducer=reproducer, arch=r.arch,
                            step=r.variant, rule="suite-ran"))
    return checks


def case_status(case: CaseResult) -> Status:
    """A case's check: errors (crash, timeout, never reported) fail like failures."""
    if case.status == "pass":
        return "pass"
    return "skip" if case.status == "skip" else "fail"


def bite_check(r: KunitRun, reproducer: str) -> Check:
    """Pass when the suite fails or does not build on the base: it tests the series."""
    name = f"{r.label}: suite bites"
    status: Status
    if r.outcome == "unavailable":
        status, summary = "skip", r.summary
    elif r.outcome == "build-failed" and any(SUITE_SOURCE in e for e in r.errors):
        first = next(e for e in r.errors if SUITE_SOURCE in e)
        status, summary = "pass", f"without the series the suite does not build: {first}"
    elif r.outcome == "failed":
        failing = [c.name for c in r.cases if c.status in ("fail", "error")]
        status = "pass"
        summary = (f"without the series {len(failing)} of {len(r.cases)} cases fail: "
                   f"{', '.join(failing)}")
    elif r.outcome == "passed":
        status = "fail"
        summary = ("the suite passes on the base without the series: it does not detect "
                   "what the series changes")
    else:
        status, summary = "warn", f"inconclusive on the base: {r.summary}"
    cases = {c.name: c.summary() for c in r.cases}
    return Check(name=name, status=status, summary=summary, duration_s=r.build_s + r.exec_s,
                 log=r.console_log or r.log,
                 reproducer=reproducer, data={"outcome": r.outcome, "errors": list(r.errors),
                                              "cases": cases},
                 arch=r.arch, step="base", rule="suite-bites")


def stage_summary(runs: list[KunitRun], checks: list[Check]) -> str:
    parts = []
    for r in runs:
        if r.variant == "base":
            bite = next(c for c in checks if c.name == f"{r.label}: suite bites")
            verdict = {"pass": "bites", "fail": "DOES NOT BITE", "warn": "inconclusive",
                       "skip": "not run"}[bite.status]
            what = "does not build" if r.outcome == "build-failed" else r.outcome
            parts.append(f"{r.label}: {what} ({verdict})")
        elif r.cases and r.outcome in ("passed", "failed"):
            counts = {s: sum(1 for c in r.cases if c.status == s)
                      for s in ("pass", "fail", "skip", "error")}
            text = " ".join(f"{n} {s}" for s, n in counts.items() if n)
            parts.append(f"{r.label}: {text}")
        elif r.outcome == "same-as-before":
            parts.append(f"{r.label}: not run again ({r.summary.split(':')[0]})")
        else:
            parts.append(f"{r.label}: {r.outcome}")
    return "; ".join(parts) or "no runs"

