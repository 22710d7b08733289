"""kseries callers, and the callers stage of verify: the caller checker plus its cross-checks."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kseries.core.context import Context, progress
from kseries.core.report import Check, Stage, Status, stage_from_checks, stopwatch, update_report
from kseries.stages.callers.check import check_callers, cross_check
from kseries.stages.callers.model import CallerReport, Finding, SecondOpinion
from kseries.stages.callers.spatch import second_opinion
from kseries.stages.callers.spec import spec_from_api


def compiled_by_from_coverage(coverage: Mapping[str, Mapping[str, Mapping[str, str]]]
                              ) -> dict[str, list[str]]:
    """{file: [arches that built it]} from the build stage's coverage matrix."""
    return {path: sorted(arch for arch, cell in cells.items() if cell.get("status") == "built")
            for path, cells in coverage.items()}


def finding_check(finding: Finding) -> Check:
    status: Status = "fail" if finding.severity == "error" else "warn"
    where = f"{finding.file}:{finding.line}" if finding.file else "spatch"
    function = f" in {finding.function}()" if finding.function else ""
    text = f" `{finding.call_text}`" if finding.call_text else ""
    return Check(f"{finding.rule or 'caller'} {where}", status,
                 f"{where}{function}:{text} {finding.message}",
                 data={"file": finding.file, "line": finding.line})


def call_checks(report: CallerReport, compiled_by: Mapping[str, Sequence[str]] | None
                ) -> list[Check]:
    checks = []
    for call in report.calls:
        arches = list(compiled_by.get(call.file, [])) if compiled_by is not None else None
        built = f"; built on {', '.join(arches) or 'no arch'}" if arches is not None else ""
        status: Status = "fail" if report.status(call) == "UNCONVERTED" else "pass"
        checks.append(Check(f"call {call.file}:{call.line}", status,
                            f"{call.name}() in {call.function or '?'}: "
                            f"{report.status(call)}{built}",
                            data={"file": call.file, "line": call.line, "callee": call.name,
                                  "function": call.function, "text": call.text,
                                  "arches": arches}))
    return checks


def run_checker(worktree: Path, ctx: Context, coverage: Mapping[str, Any] | None,
                with_spatch: bool = True) -> tuple[Stage, CallerReport]:
    spec = spec_from_api(ctx.config.api)
    with stopwatch() as took:
        diffs = [patch.diff for patch in ctx.series().patches]
        report = check_callers(worktree, spec, diffs)
        compiled_by = compiled_by_from_coverage(coverage) if coverage is not None else None
        extra = cross_check(report, compiled_by, worktree) if compiled_by is not None else []
        opinion = second_opinion(report, worktree, spec) if with_spatch else SecondOpinion(
            "skipped", "skipped: --no-spatch")
    checks = call_checks(report, compiled_by)
    on_calls = {f for c in report.calls for f in report.findings_for(c)}
    checks += [finding_check(f) for f in report.findings if f not in on_calls]
    checks += [finding_check(f) for f in extra]
    checks.append(Check("second opinion (spatch)", "warn" if opinion.status == "disagree"
                        else "skip" if opinion.status == "skipped" else "pass", opinion.detail,
                        opinion.duration_s, reproducer=opinion.command or None))
    checks += [finding_check(f) for f in opinion.findings]
    if compiled_by is None:
        checks.append(Check("cross-check with builds", "skip", "no build coverage available "
                            "(run the build stage first, e.g. kseries verify)"))
    errors = len(report.errors)
    summary = (f"{len(report.calls)} calls in {len(report.caller_files)} files, "
               f"{errors} unconverted or invalid, {len(report.warnings) + len(extra)} warnings")
    data = report.to_json() | {"second_opinion": {"status": opinion.status,
                                                  "detail": opinion.detail},
                               "compiled_by": compiled_by}
    stage = stage_from_checks("callers", checks, took[0], summary=summary,
                              reproducer="kseries callers", data=data)
    return stage, report


def callers_stage(run: Any) -> Stage:
    """verify's stage; RUN is kseries.verify.Run (uses its build stage's coverage)."""
    if run.applied is None:
        return Stage("callers", "skip", "series not applied", 0.0)
    build = run.done.get("build")
    coverage = build.data.get("coverage") if build is not None else None
    progress("callers: scanning the whole patched tree")
    return run_checker(run.applied.worktree, run.ctx, coverage)[0]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-spatch", action="store_true",
                        help="skip the Coccinelle second opinion")


def previous_coverage(out: Path, head: str) -> dict[str, Any] | None:
    """The build coverage of an earlier run on the same commit, from <out>/report.json."""
    try:
        report = json.loads((out / "report.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    stages = {s.get("name"): s for s in report.get("stages", [])}
    applied, build = stages.get("apply", {}), stages.get("build", {})
    if applied.get("data", {}).get("head") != head:
        return None
    coverage = build.get("data", {}).get("coverage")
    return coverage if isinstance(coverage, dict) else None


def callers_main(ctx: Context, args: argparse.Namespace) -> int:
    from kseries.series.apply import apply_series

    tree = ctx.tree()
    applied = apply_series(tree, ctx.series(), ctx.cache, ctx.config.name, ctx.revision_name)
    coverage = previous_coverage(ctx.out, applied.head)
    stage, report = run_checker(applied.worktree, ctx, coverage, not args.no_spatch)
    print(report.format_table(compiled_by_from_coverage(coverage) if coverage else None))
    if coverage is None:
        print(f"built on: unknown - {ctx.out / 'report.json'} has no build of this head "
              "(run `kseries build` with the same --out first)")
    for check in stage.checks:
        if check.status in ("warn", "fail") and not check.name.startswith("call "):
            print(f"{check.status.upper()}: {check.summary}")
    path = update_report(ctx.out, stage, ctx.config.name, ctx.revision_name, str(tree.path))
    print(f"report: {path}")
    return 1 if report.errors else 0
