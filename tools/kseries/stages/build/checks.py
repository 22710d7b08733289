"""The checks of the build stage: per arch its config, its base and every step (failed
objects and new warnings against the base fail them), sparse, then coverage (every file built
somewhere) and bisectability."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict

from kseries.core.report import Check, Status
from kseries.kernel.kwarn import (
    Diagnostic,
    errors_only,
    fixed_warnings,
    format_0day,
    new_warnings,
    warnings_only,
)
from kseries.stages.build.coverage import ArchSetup
from kseries.stages.build.execute import ArchRun, BaseCache
from kseries.stages.build.make import StepResult
from kseries.stages.build.plan import Plan

MAX_LINES = 40


def _lines(diagnostics: Iterable[Diagnostic], limit: int = MAX_LINES) -> list[str]:
    lines = [text for d in diagnostics for text in d.render()]
    return lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit
                            else [])


def new_failures(base: BaseCache, result: StepResult) -> list[str]:
    """Objects that fail in RESULT but built at the base (or did not exist there)."""
    already = set(base.failed(result.objects))
    return [o for o in result.failed if o not in already]


def step_check(arch_run: ArchRun, result: StepResult, subject: str,
               compare: bool) -> tuple[Check, list[Diagnostic]]:
    """A check for one step: failed objects and new warnings (vs the base) fail it."""
    mine = [d for d in result.diagnostics if d.obj in result.objects and d.tool != "sparse"]
    new: list[Diagnostic] = []
    if compare:
        new = new_warnings(arch_run.cache.diagnostics(result.objects), warnings_only(mine))
    errors = errors_only(result.diagnostics)
    name = f"{arch_run.setup.arch.name} {result.step}"
    status: Status = "pass"
    broken = new_failures(arch_run.cache, result)
    if broken or (not result.ok and not result.failed):
        status = "fail"
        summary = (f"{subject} breaks the build on {arch_run.setup.arch.name}: "
                   f"{', '.join(broken) or 'make failed'}")
    elif not result.ok:
        status = "warn"
        summary = (f"{subject}: {', '.join(result.failed)} still fail(s) on "
                   f"{arch_run.setup.arch.name}, as at the base")
    elif new:
        status = "fail"
        summary = f"{subject}: {len(new)} new warning(s) on {arch_run.setup.arch.name}"
    else:
        summary = (f"{subject}: {len(result.objects)} object(s) built, "
                   f"{len(warnings_only(mine))} warning(s), none new" if compare else
                   f"{subject}: {len(result.objects)} object(s) built")
    fixed = fixed_warnings(arch_run.cache.diagnostics(result.objects), mine) if compare else []
    data = {"commit": result.commit, "objects": list(result.objects),
            "reused": list(result.reused), "failed": list(result.failed),
            "errors": _lines(errors),
            "warnings": [d.headline() for d in warnings_only(mine)],
            "new_warnings": format_0day(warnings_only(mine), new) if new else [],
            "fixed_warnings": [d.headline() for d in fixed]}
    return Check(name, status, summary, result.duration_s, result.log,
                 result.reproducer if status != "pass" else None, data), new


def config_check(setup: ArchSetup) -> Check:
    name = f"{setup.arch.name} config"
    fragments = ", ".join(f.name for f in setup.fragments)
    data = {"defconfig": setup.arch.defconfig, "fragments": [str(f) for f in setup.fragments],
            "config": str(setup.out_dir / "config"),
            "problems": [asdict(p) for p in setup.problems]}
    if setup.problems:
        first = setup.problems[0]
        more = f" (+{len(setup.problems) - 1} more)" if len(setup.problems) > 1 else ""
        return Check(name, "fail", f"{setup.arch.name}: {first}{more}", setup.duration_s,
                     str(setup.out_dir / "config.log"), None, data)
    return Check(name, "pass", f"{setup.arch.defconfig} + {fragments}: every fragment "
                 "symbol has its value", setup.duration_s, str(setup.out_dir / "config.log"),
                 None, data)


def base_check(arch_run: ArchRun) -> Check:
    name = f"{arch_run.setup.arch.name} base"
    objects = arch_run.base_objects
    failed = arch_run.cache.failed(objects)
    warnings = warnings_only(arch_run.cache.diagnostics(objects))
    how = "reused" if arch_run.base_reused else "built"
    step = arch_run.base_step
    took = step.duration_s if step is not None else 0.0
    log = step.log if step is not None else None
    data = {"objects": list(objects), "failed": failed, "reused": arch_run.base_reused,
            "warnings": [d.headline() for d in warnings]}
    if failed:
        return Check(name, "warn", f"{', '.join(failed)} already fail(s) to build at the base "
                     f"on {arch_run.setup.arch.name}", took, log, None, data)
    return Check(name, "pass", f"base: {len(objects)} object(s) {how}, {len(warnings)} "
                 "warning(s)", took, log, None, data)


def sparse_check(arch_run: ArchRun, compare: bool) -> Check:
    head = arch_run.sparse_head
    assert head is not None
    mine = [d for d in head.diagnostics if d.obj in head.objects and d.tool == "sparse"]
    base = arch_run.cache.sparse_diagnostics(head.objects)
    new = new_warnings(base, warnings_only(mine)) if compare else []
    data = {"objects": list(head.objects), "warnings": [d.headline() for d in mine],
            "new_warnings": format_0day(warnings_only(mine), new) if new else [],
            "fixed": [d.headline() for d in fixed_warnings(base, mine)] if compare else []}
    name = f"{arch_run.setup.arch.name} sparse"
    if not head.ok or errors_only(mine):
        return Check(name, "fail", f"sparse failed on {', '.join(head.objects)}",
                     head.duration_s, head.log, head.reproducer, data)
    if new:
        return Check(name, "fail", f"sparse: {len(new)} new warning(s): {new[0].headline()}",
                     head.duration_s, head.log, head.reproducer, data)
    return Check(name, "pass", f"sparse (C=2) on {len(head.objects)} touched file(s): "
                 f"{len(mine)} warning(s), none new", head.duration_s, head.log, None, data)


def coverage_matrix(plan: Plan, runs: Sequence[ArchRun]) -> dict[str, dict[str, dict[str, str]]]:
    """file -> arch -> {"status": built | not-buildable | failed, "reason": ...}."""
    matrix: dict[str, dict[str, dict[str, str]]] = {}
    for target in plan.targets:
        row: dict[str, dict[str, str]] = {}
        for arch_run in runs:
            cell = arch_run.setup.buildable[target.source]
            if cell.status != "buildable":
                row[arch_run.setup.arch.name] = {"status": cell.status, "reason": cell.reason}
                continue
            broken = [r.step for r in arch_run.steps if target.obj in r.failed]
            entry = {"status": "failed", "reason": f"fails at {', '.join(broken)}"} if broken \
                else {"status": "built", "reason": cell.reason}
            if cell.calls:
                entry["calls"] = cell.calls
            row[arch_run.setup.arch.name] = entry
        matrix[target.source] = row
    return matrix


def coverage_check(plan: Plan, matrix: Mapping[str, Mapping[str, Mapping[str, str]]],
                   some_arches: bool = False) -> Check:
    """Every file built on at least one arch. With only some arches selected (--arch), a
    file that none of them can build is a warning: another arch may build it."""
    unbuilt = [f for f, row in matrix.items()
               if not any(c["status"] == "built" for c in row.values())]
    failed = [f for f in unbuilt if any(c["status"] == "failed" for c in matrix[f].values())]
    gaps = [f"{f} on {a}" for f, row in matrix.items() for a, c in row.items()
            if "could be" in c.get("reason", "")]
    gaps += [f"{f}: its calls are compiled out wherever it is built" for f, row in matrix.items()
             if any(c.get("calls") for c in row.values())
             and not any(c.get("calls") in ("compiled", "unknown") for c in row.values()
                         if c["status"] == "built")]
    data = {"unbuilt": unbuilt, "gaps": gaps}
    if unbuilt:
        status: Status = "warn" if some_arches and not failed else "fail"
        reasons = "; ".join(f"{f}: " + ", ".join(f"{a}: {c['reason']}" for a, c in
                                                 matrix[f].items()) for f in unbuilt[:3])
        where = "on none of the selected arches" if some_arches else "on no arch"
        return Check("coverage", status, f"{len(unbuilt)} file(s) built {where}: {reasons}",
                     data=data)
    if gaps:
        return Check("coverage", "warn", f"coverage gaps: {'; '.join(gaps[:3])}", data=data)
    return Check("coverage", "pass", f"every one of {len(matrix)} file(s) built on at least "
                 "one arch", data=data)


def bisect_check(first_bad: Mapping[str, str], runs: Sequence[ArchRun]) -> Check:
    if first_bad:
        text = "; ".join(f"{arch}: first broken by {what}" for arch, what in first_bad.items())
        return Check("bisect", "fail", text, data={"first_bad": dict(first_bad)})
    arches = ", ".join(r.setup.arch.name for r in runs)
    return Check("bisect", "pass", f"every patch builds on {arches}", data={"first_bad": {}})
