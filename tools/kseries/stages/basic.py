"""kseries verify: run every stage that exists, write <out>/report.json, summarise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kseries.core.context import Context, progress
from kseries.core.errors import KseriesError
from kseries.core.report import Check, Report, Stage, Status, stopwatch
from kseries.kernel.tree import Tree
from kseries.series import upkeep
from kseries.series.apply import ApplyResult, apply_series
from kseries.series.apply import checkout as apply_checkout
from kseries.stages.callers.stage import callers_stage


@dataclass
class Run:
    """State shared by the stages of one verify run."""

    ctx: Context
    tree: Tree | None = None
    applied: ApplyResult | None = None
    done: dict[str, Stage] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)


StageFn = Callable[[Run], Stage]


def tree_stage(run: Run) -> Stage:
    with stopwatch() as took:
        run.tree = run.ctx.tree()
    tree = run.tree
    return Stage("tree", "pass", f"Linux {tree.version} at {tree.base_commit[:12]} ({tree.path})",
                 took[0], data={"path": str(tree.path), "version": tree.version,
                                "base_commit": tree.base_commit, "default": tree.default},
                 reproducer="kseries tree --show")


def apply_stage(run: Run) -> Stage:
    if run.tree is None:
        return Stage("apply", "skip", "no tree", 0.0)
    with stopwatch() as took:
        series = run.ctx.series()
        progress(f"apply: {len(series.patches)} patches from {series.path.name} with b4")
        run.applied = apply_series(run.tree, series, run.ctx.cache, run.ctx.config.name,
                                   run.ctx.revision_name)
    applied = run.applied
    checks = [Check(f"patch {p.index}", "pass", f"{p.commit[:12]} {p.subject}")
              for p in applied.patches]
    checks += [Check("base", "warn", note) for note in applied.notes if "differs" in note
               or "not in" in note or "no base-commit" in note]
    checks += [Check("whitespace", "warn", note) for note in applied.notes if "whitespace" in note]
    what = "already applied" if applied.already_applied else "applied"
    summary = f"{len(applied.patches)} patches {what} on {applied.base[:12]} in {applied.worktree}"
    status: Status = "warn" if any(c.status == "warn" for c in checks) else "pass"
    return Stage("apply", status, summary, took[0], tuple(checks), reproducer=applied.reproducer,
                 data={"worktree": str(applied.worktree), "branch": applied.branch,
                       "base": applied.base, "head": applied.head,
                       "notes": list(applied.notes)})


def revisions_stage(run: Run) -> Stage:
    """Compare with the previous revision in series.toml, when there is one."""
    ctx = run.ctx
    if run.tree is None or run.applied is None:
        return Stage("revisions", "skip", "series not applied", 0.0)
    if ctx.options.mbox is not None:
        return Stage("revisions", "skip", "--mbox given: no previous revision to compare", 0.0)
    current = ctx.config.revision(ctx.options.revision)
    previous = ctx.config.previous(current.name)
    if previous is None:
        return Stage("revisions", "skip", f"{current.name} is the first revision in series.toml",
                     0.0)
    with stopwatch() as took:
        result = upkeep.compare(ctx, run.tree, previous.name, current.name)
        apply_checkout(run.applied.worktree, run.applied.head)
    (ctx.out / "revisions.txt").parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / "revisions.txt").write_text(result.format_text() + "\n")
    return Stage("revisions", "pass", result.summary(), took[0], log=str(ctx.out / "revisions.txt"),
                 reproducer=f"kseries diff {previous.name} {current.name}", data=result.to_json())


def stages() -> list[tuple[str, StageFn]]:
    """The stages in order (imported here: the stage modules import Run from this one)."""
    from kseries.stages.build.stage import build_stage
    from kseries.stages.kunit.stage import kunit_stage
    from kseries.stages.vmtest.stage import vmtest_stage

    return [("tree", tree_stage), ("apply", apply_stage), ("build", build_stage),
            ("callers", callers_stage), ("kunit", kunit_stage), ("vmtest", vmtest_stage),
            ("revisions", revisions_stage)]


def run_stage(name: str, fn: StageFn, run: Run) -> Stage:
    """Run one stage; a KseriesError becomes that stage's failure, not a crash."""
    with stopwatch() as took:
        try:
            return fn(run)
        except KseriesError as err:
            failed = str(err)
    return Stage(name, "fail", failed, took[0])


def verify(ctx: Context) -> Report:
    report = Report(ctx.config.name, ctx.revision_name, str(ctx.options.tree or "default"))
    run = Run(ctx)
    for name, fn in stages():
        progress(f"stage {name}: starting")
        stage = report.add(run_stage(name, fn, run))
        run.done[name] = stage
        progress(f"stage {name}: {stage.status} - {stage.summary}")
    return report


def write_report(report: Report, out: Path) -> Path:
    return report.write(out)
