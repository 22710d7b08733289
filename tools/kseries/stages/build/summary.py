"""The build stage's result: its checks as one Stage, with the plan, the coverage matrix and
which objects include each touched header as data, and tuxmake's metadata.json per arch
(metadata.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kseries.core.context import Context
from kseries.core.report import Check, Stage, stage_from_checks
from kseries.kernel.arches import ARCHES
from kseries.kernel.kwarn import errors_only, warnings_only
from kseries.series.apply import ApplyResult
from kseries.stages.build.checks import (
    base_check,
    bisect_check,
    config_check,
    coverage_check,
    coverage_matrix,
    new_failures,
    sparse_check,
    step_check,
)
from kseries.stages.build.execute import ArchRun, object_deps
from kseries.stages.build.metadata import run_facts, write_metadata
from kseries.stages.build.options import BuildOptions
from kseries.stages.build.plan import Plan


def summarise(ctx: Context, applied: ApplyResult, plan: Plan, runs: Sequence[ArchRun],
              options: BuildOptions, duration: float,
              ccache_before: Mapping[str, int] | None = None) -> Stage:
    checks: list[Check] = []
    subjects = {f"patch-{p.index}": f"patch {p.index}/{len(applied.patches)} '{p.subject}'"
                for p in applied.patches}
    subjects["head"] = "the series"
    first_bad: dict[str, str] = {}
    for arch_run in runs:
        checks.append(config_check(arch_run.setup))
        if options.base:
            checks.append(base_check(arch_run))
        for result in arch_run.steps:
            check, _ = step_check(arch_run, result, subjects.get(result.step, result.step),
                                  options.base)
            checks.append(check)
            breaks = new_failures(arch_run.cache, result) or (not result.ok and not result.failed)
            if breaks and arch_run.setup.arch.name not in first_bad:
                first_bad[arch_run.setup.arch.name] = subjects.get(result.step, result.step)
        if arch_run.sparse_head is not None:
            checks.append(sparse_check(arch_run, options.base))
    coverage = coverage_matrix(plan, runs)
    checks.append(coverage_check(coverage, len(runs) < len(ARCHES)))
    if options.bisect and applied.patches:
        checks.append(bisect_check(first_bad, runs))
    data = {
        "base": applied.base, "head": applied.head, "worktree": str(applied.worktree),
        "files": [asdict(t) for t in plan.targets],
        "skipped": [{"file": f, "reason": r} for f, r in plan.skipped],
        "functions": dict(plan.functions),
        "headers": header_coverage(plan, runs, applied.worktree),
        "coverage": coverage, "arches": {r.setup.arch.name: arch_data(r) for r in runs},
        "first_bad": first_bad,
    }
    facts = run_facts(ctx, applied, ccache_before)
    for arch_run in runs:
        write_metadata(arch_run, checks, facts)
    stage = stage_from_checks("build", checks, duration, data=data,
                              reproducer=f"kseries build --arch "
                                         f"{' --arch '.join(r.setup.arch.name for r in runs)}")
    return stage if stage.status != "pass" else Stage(
        name=stage.name, status="pass", summary=pass_summary(plan, runs, applied, options),
        duration_s=duration, checks=stage.checks, reproducer=stage.reproducer, data=stage.data)


def pass_summary(plan: Plan, runs: Sequence[ArchRun], applied: ApplyResult,
                 options: BuildOptions) -> str:
    objects = sum(len(r.setup.objects) for r in runs)
    parts = [f"{len(plan.targets)} file(s), {objects} object build(s) on {len(runs)} arch(es)"]
    if options.bisect and applied.patches:
        parts.append(f"all {len(applied.patches)} patches build (bisectable)")
    parts.append("0 new warnings" if options.base else "no base comparison")
    return ", ".join(parts)


def header_coverage(plan: Plan, runs: Sequence[ArchRun], worktree: Path
                    ) -> dict[str, dict[str, list[str]]]:
    """Touched header -> arch -> built objects that include it (from kbuild's .cmd files)."""
    result: dict[str, dict[str, list[str]]] = {}
    for header in plan.headers:
        result[header] = {}
        for arch_run in runs:
            build_dir = arch_run.setup.build_dir
            result[header][arch_run.setup.arch.name] = [
                o for o in arch_run.setup.objects
                if header in (object_deps(build_dir, o, (worktree, build_dir)) or set())]
    return result


def arch_data(arch_run: ArchRun) -> dict[str, Any]:
    setup = arch_run.setup
    return {
        "toolchain": setup.toolchain, "defconfig": setup.arch.defconfig,
        "build_dir": str(setup.build_dir), "config": str(setup.out_dir / "config"),
        "objects": list(setup.objects), "base_reused": arch_run.base_reused,
        "steps": [{"step": r.step, "commit": r.commit, "objects": list(r.objects),
                   "failed": list(r.failed), "duration_s": r.duration_s, "log": r.log,
                   "warnings": len(warnings_only(r.diagnostics)),
                   "errors": len(errors_only(r.diagnostics))} for r in arch_run.steps],
    }
