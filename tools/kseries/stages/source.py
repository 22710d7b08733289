"""The first two stages: the tree to work on, and the series applied to it with b4."""

from __future__ import annotations

from typing import Any

from kseries.core.context import progress
from kseries.core.pipeline import (
    NoOptions,
    RunState,
    StageDef,
    no_args,
    no_options_for_verify,
    no_options_from,
)
from kseries.core.report import Check, Stage, stage_from_checks, stopwatch
from kseries.series.apply import ApplyResult, apply_series
from kseries.series.b4am import Prepared, lossy_note


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
        ctx = state.ctx
        progress(f"apply: {ctx.mbox_path().name} with b4")
        state.applied = apply_series(state.tree, ctx.mbox_path(), ctx.cache, ctx.config.name,
                                     ctx.revision_name,
                                     thread_revision=ctx.options.thread_revision)
    return applied_stage(state.applied, took[0])


def applied_stage(applied: ApplyResult, took: float) -> Stage:
    checks = [Check(name=f"patch {p.index}", status="pass", summary=f"{p.commit[:12]} {p.subject}",
                    step=f"patch {p.index}") for p in applied.patches]
    checks += [Check(name="base", status="warn", summary=note,
                     rule="base") for note in applied.notes
               if note.startswith(("base-commit ", "series has no base-commit"))]
    checks += [Check(name="whitespace", status="warn", summary=note,
                     rule="whitespace") for note in applied.notes
               if note.startswith("warning:") and "whitespace" in note]
    checks += thread_checks(applied.prepared)
    what = "already applied" if applied.already_applied else "applied"
    summary = f"{len(applied.patches)} patches {what} on {applied.base[:12]} in {applied.worktree}"
    if applied.prepared is not None:
        summary = f"v{applied.prepared.revision}: {summary}"
    return stage_from_checks("apply", checks, took, summary,
                             data={"worktree": str(applied.worktree), "branch": applied.branch,
                                   "base": applied.base, "head": applied.head,
                                   "notes": list(applied.notes), "git_am": applied.reproducer,
                                   **thread_data(applied.prepared)})


def thread_checks(prepared: Prepared | None) -> list[Check]:
    """What b4 took from the thread besides the patches, and what it left out. A reply that
    carries a diff is a warning: a reviewer's fixup is not in what was applied."""
    if prepared is None:
        return []
    checks = [Check(name=f"trailer {t.index}", status="pass", summary=t.describe(),
                    step=f"patch {t.index}", rule="trailer") for t in prepared.trailers]
    checks += [Check(name=f"from line {index}", status="warn", summary=lossy_note(index, line),
                     step=f"patch {index}", rule="mbox-escape")
               for index, line in prepared.lossy]
    checks += [Check(name="ignored message", status="warn" if i.has_diff else "pass",
                     summary=i.describe(), rule="ignored") for i in prepared.ignored]
    return checks


def thread_data(prepared: Prepared | None) -> dict[str, Any]:
    if prepared is None:
        return {}
    return {"thread": str(prepared.thread.source), "thread_revision": prepared.revision,
            "b4_mbx": str(prepared.mbx),
            "trailers": [{"patch": t.index, "trailer": t.trailer, "from": t.source}
                         for t in prepared.trailers],
            "ignored": [{"message_id": i.message_id, "subject": i.subject, "reason": i.reason}
                        for i in prepared.ignored]}


TREE: StageDef[NoOptions] = StageDef(
    name="tree", help="fetch and import the default tree; show a tree", run=tree_stage,
    from_args=no_options_from, for_verify=no_options_for_verify, to_args=no_args,
    tools=lambda _o: ("git", "apt-get", "dpkg-deb", "tar"))

APPLY: StageDef[NoOptions] = StageDef(
    name="apply", help="apply the series in a scratch worktree with b4", run=apply_stage,
    from_args=no_options_from, for_verify=no_options_for_verify, to_args=no_args,
    needs=lambda _o: ("tree",), tools=lambda _o: ("git", "b4"))
