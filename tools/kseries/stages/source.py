"""The first two stages: the tree to work on, and the series applied to it with b4."""

from __future__ import annotations

from kseries.core.context import progress
from kseries.core.pipeline import (
    NoOptions,
    RunState,
    StageDef,
    no_args,
    no_options_for_verify,
    no_options_from,
)
from kseries.core.report import Check, Stage, Status, stopwatch
from kseries.series.apply import ApplyResult, apply_series


def tree_stage(state: RunState, _options: NoOptions) -> Stage:
    with stopwatch() as took:
        state.tree = state.ctx.tree()
    tree = state.tree
    return Stage(name="tree", status="pass",
                 summary=f"Linux {tree.version} at {tree.base_commit[:12]} ({tree.path})",
                 duration_s=took[0], data={"path": str(tree.path), "version": tree.version,
                                "base_commit": tree.base_commit, "default": tree.default})


def apply_stage(state: RunState, _options: NoOptions) -> Stage:
    assert state.tree is not None  # the runner runs this only after the tree stage passed
    with stopwatch() as took:
        series = state.ctx.series()
        progress(f"apply: {len(series.patches)} patches from {series.path.name} with b4")
        state.applied = apply_series(state.tree, series, state.ctx.cache,
                                     state.ctx.config.name, state.ctx.revision_name)
    return applied_stage(state.applied, took[0])


def applied_stage(applied: ApplyResult, took: float) -> Stage:
    checks = [Check(name=f"patch {p.index}", status="pass", summary=f"{p.commit[:12]} {p.subject}",
                    step=f"patch {p.index}") for p in applied.patches]
    checks += [Check(name="base", status="warn", summary=note,
                     rule="base") for note in applied.notes
               if "differs" in note or "not in" in note or "no base-commit" in note]
    checks += [Check(name="whitespace", status="warn", summary=note,
                     rule="whitespace") for note in applied.notes
               if "whitespace" in note]
    what = "already applied" if applied.already_applied else "applied"
    summary = f"{len(applied.patches)} patches {what} on {applied.base[:12]} in {applied.worktree}"
    status: Status = "warn" if any(c.status == "warn" for c in checks) else "pass"
    return Stage(name="apply", status=status, summary=summary, duration_s=took,
                 checks=tuple(checks),
                 data={"worktree": str(applied.worktree), "branch": applied.branch,
                       "base": applied.base, "head": applied.head,
                       "notes": list(applied.notes), "git_am": applied.reproducer})


TREE: StageDef[NoOptions] = StageDef(
    name="tree", help="fetch and import the default tree; show a tree", run=tree_stage,
    from_args=no_options_from, for_verify=no_options_for_verify, to_args=no_args,
    tools=lambda _o: ("git", "apt-get", "dpkg-deb", "tar"))

APPLY: StageDef[NoOptions] = StageDef(
    name="apply", help="apply the series in a scratch worktree with b4", run=apply_stage,
    from_args=no_options_from, for_verify=no_options_for_verify, to_args=no_args,
    needs=lambda _o: ("tree",), tools=lambda _o: ("git", "b4"))
