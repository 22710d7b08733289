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
    rule: str | None = None
    broken = new_failures(arch_run.cache, result)
    if broken or (not result.ok and not result.failed):
        status, rule = "fail", "build-breaks"
        summary = (f"{subject} breaks the build on {arch_run.setup.arch.name}: "
                   f"{', '.join(broken) or 'make failed'}")
    elif not result.ok:
        status, rule = "warn", "base-fails"
        summary = (f"{subject}: {', '.join(result.failed)} still fail(s) on "
                   f"{arch_run.setup.arch.name}, as at the base")
    elif new:
        status, rule = "fail", "new-warning"
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
    return Check(name=name, status=status, summary=summary, duration_s=result.duration_s,
                 log=result.log, reproducer=result.reproducer if status != "pass" else None,
                 data=data, arch=arch_run.setup.arch.name, step=result.step, rule=rule), new


def config_check(setup: ArchSetup) -> Check:
    name = f"{setup.arch.name} config"
    fragments = ", ".join(f.name for f in setup.fragments)
    data = {"defconfig": setup.arch.defconfig, "fragments": [str(f) for f in setup.fragments],
            "config": str(setup.out_dir / "config"),
            "problems": [asdict(p) for p in setup.problems]}
    if setup.problems:
        first = setup.problems[0]
        more = f" (+{len(setup.problems) - 1} more)" if len(setup.problems) > 1 else ""
        return Check(name=name, status="fail", summary=f"{setup.arch.name}: {first}{more}",
                     duration_s=setup.duration_s, log=str(setup.out_dir / "config.log"),
                     data=data, arch=setup.arch.name, step="config", rule="config")
    return Check(name=name, status="pass",
                 summary=f"{setup.arch.defconfig} + {fragments}: every fragment "
                 "symbol has its value", duration_s=setup.duration_s,
                 log=str(setup.out_dir / "config.log"), data=data, arch=setup.arch.name,
                 step="config")


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
        return Check(name=name, status="warn",
                     summary=f"{', '.join(failed)} already fail(s) to build at the base "
                     f"on {arch_run.setup.arch.name}", duration_s=took, log=log, data=data,
                     arch=arch_run.setup.arch.name, step="base", rule="base-fails")
    return Check(name=name, status="pass",
                 summary=f"base: {len(objects)} object(s) {how}, {len(warnings)} "
                 "warning(s)", duration_s=took, log=log, reproducer=None, data=data)


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
        return Check(name=name, status="fail",
                     summary=f"sparse failed on {', '.join(head.objects)}",
                     duration_s=head.duration_s, log=head.log, reproducer=head.reproducer,
                     data=data, arch=arch_run.setup.arch.name, step="sparse", rule="sparse")
    if new:
        return Check(name=name, status="fail",
                     summary=f"sparse: {len(new)} new warning(s): {new[0].headline()}",
                     duration_s=head.duration_s, log=head.log, reproducer=head.reproducer,
                     data=data, arch=arch_run.setup.arch.name, step="sparse",
                     rule="new-warning")
    return Check(name=name, status="pass",
                 summary=f"sparse (C=2) on {len(head.objects)} touched file(s): "
                 f"{len(mine)} warning(s), none new", duration_s=head.duration_s,
                 log=head.log, data=data, arch=arch_run.setup.arch.name, step="sparse")


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


def coverage_check(matrix: Mapping[str, Mapping[str, Mapping[str, str]]],
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
        return Check(name="coverage", status=status,
                     summary=f"{len(unbuilt)} file(s) built {where}: {reasons}",
                     data=data)
    if gaps:
        return Check(name="coverage", status="warn",
                     summary=f"coverage gaps: {'; '.join(gaps[:3])}", data=data)
    return Check(name="coverage", status="pass",
                 summary=f"every one of {len(matrix)} file(s) built on at least "
                 "one arch", data=data)


def bisect_check(first_bad: Mapping[str, str], runs: Sequence[ArchRun]) -> Check:
    return bisect_check_of(first_bad, [r.setup.arch.name for r in runs])


def bisect_check_of(first_bad: Mapping[str, str], arch_names: Sequence[str]) -> Check:
    """Every patch builds on ARCH_NAMES, or where each arch first broke."""
    if first_bad:
        text = "; ".join(f"{arch}: first broken by {what}" for arch, what in first_bad.items())
        return Check(name="bisect", status="fail", summary=text,
                     data={"first_bad": dict(first_bad)})
    arches = ", ".join(arch_names)
    return Check(name="bisect", status="pass", summary=f"every patch builds on {arches}",
                 data={"first_bad": {}})
