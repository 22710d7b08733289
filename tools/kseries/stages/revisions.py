"""The revisions stage: how the current revision differs from the previous one in series.toml."""

from __future__ import annotations

import shlex

from kseries.core.context import Context
from kseries.core.pipeline import (
    NoOptions,
    RunState,
    StageDef,
    no_args,
    no_options_for_verify,
    no_options_from,
)
from kseries.core.report import Stage, stopwatch
from kseries.series import upkeep
from kseries.series.apply import checkout


def revisions_stage(state: RunState, _options: NoOptions) -> Stage:
    ctx = state.ctx
    assert state.tree is not None and state.applied is not None  # needs apply
    if ctx.options.mbox is not None:
        return Stage(name="revisions", status="skip",
                     summary="--mbox given: no previous revision to compare", duration_s=0.0)
    current = ctx.config.revision(ctx.options.revision)
    previous = ctx.config.previous(current.name)
    if previous is None:
        return Stage(name="revisions", status="skip",
                     summary=f"{current.name} is the first revision in series.toml",
                     duration_s=0.0)
    with stopwatch() as took:
        result = upkeep.compare(ctx, state.tree, previous.name, current.name)
        # compare() checks out other revisions in the scratch worktree: later stages of
        # this run expect the applied head there.
        checkout(state.applied.worktree, state.applied.head)
    text = ctx.out / "revisions.txt"
    text.parent.mkdir(parents=True, exist_ok=True)
    text.write_text(result.format_text() + "\n")
    return Stage(name="revisions", status="pass", summary=result.summary(), duration_s=took[0],
                 log=str(text),
                 data=result.to_json())


def reproduce(ctx: Context, _options: NoOptions) -> str:
    current = ctx.config.revision(ctx.options.revision)
    previous = ctx.config.previous(current.name)
    args = ["kseries", "diff", previous.name if previous else "PREVIOUS", current.name]
    if ctx.options.tree is not None:
        args += ["--tree", str(ctx.options.tree)]
    return shlex.join(args)


REVISIONS: StageDef[NoOptions] = StageDef(
    name="revisions", help="compare with the previous revision (git range-diff)",
    run=revisions_stage, from_args=no_options_from, for_verify=no_options_for_verify,
    to_args=no_args, needs=lambda _o: ("apply",), tools=lambda _o: ("git", "b4"),
    reproduce=reproduce)
