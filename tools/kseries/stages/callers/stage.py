"""kseries callers, and the callers stage of verify: the caller checker plus its cross-checks."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kseries.core.context import Context, progress
from kseries.core.pipeline import RunState, StageDef
from kseries.core.report import Check, Stage, Status, stage_from_checks, stopwatch
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
    return Check(name=f"{finding.rule or 'caller'} {where}", status=status,
                 summary=f"{where}{function}:{text} {finding.message}",
                 data={"file": finding.file, "line": finding.line}, rule=finding.rule or "caller")


def call_checks(report: CallerReport, compiled_by: Mapping[str, Sequence[str]] | None
                ) -> list[Check]:
    checks = []
    for call in report.calls:
        arches = list(compiled_by.get(call.file, [])) if compiled_by is not None else None
        built = f"; built on {', '.join(arches) or 'no arch'}" if arches is not None else ""
        status: Status = "fail" if report.status(call) == "UNCONVERTED" else "pass"
        checks.append(Check(name=f"call {call.file}:{call.line}", status=status,
                            summary=f"{call.name}() in {call.function or '?'}: "
                            f"{report.status(call)}{built}",
                            data={"file": call.file, "line": call.line, "callee": call.name,
                                  "function": call.function, "text": call.text,
                                  "arches": arches}, rule="call-converted"))
    return checks


def run_checker(worktree: Path, ctx: Context, diffs: list[str],
                coverage: Mapping[str, Any] | None,
                with_spatch: bool = True) -> tuple[Stage, CallerReport]:
    spec = spec_from_api(ctx.config.api)
    with stopwatch() as took:
        report = check_callers(worktree, spec, diffs)
        compiled_by = compiled_by_from_coverage(coverage) if coverage is not None else None
        extra = cross_check(report, compiled_by, worktree) if compiled_by is not None else []
        opinion = second_opinion(report, worktree, spec) if with_spatch else SecondOpinion(
            "skipped", "skipped: --no-spatch")
    checks = call_checks(report, compiled_by)
    on_calls = {f for c in report.calls for f in report.findings_for(c)}
    checks += [finding_check(f) for f in report.findings if f not in on_calls]
    checks += [finding_check(f) for f in extra]
    checks.append(Check(name="second opinion (spatch)",
                        status="warn" if opinion.status == "disagree"
                        else "skip" if opinion.status == "skipped" else "pass",
                        summary=opinion.detail, duration_s=opinion.duration_s,
                        reproducer=opinion.command or None, rule="second-opinion"))
    checks += [finding_check(f) for f in opinion.findings]
    if compiled_by is None:
        checks.append(Check(name="cross-check with builds", status="skip",
                            summary="no build coverage available "
                            "(run the build stage first, e.g. kseries verify)"))
    errors = len(report.errors)
    summary = (f"{len(report.calls)} calls in {len(report.caller_files)} files, "
               f"{errors} unconverted or invalid, {len(report.warnings) + len(extra)} warnings")
    data = report.to_json() | {"second_opinion": {"status": opinion.status,
                                                  "detail": opinion.detail},
                               "compiled_by": compiled_by}
    stage = stage_from_checks("callers", checks, took[0], summary=summary,
                              data=data)
    return stage, report


@dataclass(frozen=True)
class CallersOptions:
    spatch: bool = True


def callers_stage(state: RunState, options: CallersOptions) -> Stage:
    """Scan the whole patched tree; cross-check with the build coverage of this head."""
    assert state.applied is not None  # needs apply
    coverage = build_coverage(state, state.applied.head)
    progress("callers: scanning the whole patched tree")
    assert state.applied.series is not None  # apply_series always says what it applied
    diffs = [patch.diff for patch in state.applied.series.patches]
    stage, report = run_checker(state.applied.worktree, state.ctx, diffs, coverage,
                                options.spatch)
    table = state.log_dir() / "callers.txt"
    table.write_text(table_text(report, coverage, state.ctx.out) + "\n")
    return replace(stage, log=str(table))


def build_coverage(state: RunState, head: str) -> dict[str, Any] | None:
    """The build stage's coverage of HEAD: from this run, else from the report in --out."""
    build = state.done.get("build")
    if build is None:
        earlier_apply = state.earlier.get("apply")
        if earlier_apply is None or earlier_apply.data.get("head") != head:
            return None
        build = state.earlier.get("build")
    coverage = build.data.get("coverage") if build is not None else None
    return coverage if isinstance(coverage, dict) else None


def table_text(report: CallerReport, coverage: Mapping[str, Any] | None, out: Path) -> str:
    text = report.format_table(compiled_by_from_coverage(coverage) if coverage else None)
    if coverage is None:
        text += (f"\nbuilt on: unknown - {out / 'report.json'} has no build of this head "
                 "(run `kseries build` with the same --out first)")
    return text


def render(stage: Stage) -> list[str]:
    """What `kseries callers` prints: the table, then what is not a call and not a pass."""
    lines = Path(stage.log).read_text().splitlines() if stage.log else []
    return lines + [f"{c.status.upper()}: {c.summary}" for c in stage.checks
                    if c.status in ("warn", "fail") and not c.name.startswith("call ")]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-spatch", action="store_true",
                        help="skip the Coccinelle second opinion")


STAGE: StageDef[CallersOptions] = StageDef(
    name="callers", help="check that every caller of the changed API was converted",
    run=callers_stage, from_args=lambda args, _ctx: CallersOptions(not args.no_spatch),
    for_verify=lambda _ctx, _arches: CallersOptions(),
    to_args=lambda o: [] if o.spatch else ["--no-spatch"], configure=configure_parser,
    needs=lambda _o: ("apply",), tools=lambda o: ("git", *(("spatch",) if o.spatch else ())),
    render=render)
