"""`kseries checks`, and the checks stage of verify: what every patch bot runs first.

NIPA style: one check per patch per rule (checkpatch, signoff, fixes, maintainers), one
per touched .c/.h file (kernel-doc) and one per series (base-commit), each pass / warn /
fail with a one-line summary and a log under <out>/logs/checks/. Everything runs in the
scratch worktree the apply stage made, with the tree's own scripts; one module per rule,
inputs.py is the one door to the series as mailed. `--notes FILE` also rewrites the
generated routing section of FILE (notes.py).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.core.context import Context, progress
from kseries.core.pipeline import RunState, StageDef
from kseries.core.report import Check, Stage, stage_from_checks, stopwatch
from kseries.series.apply import ApplyResult
from kseries.stages.checks import (
    basecommit,
    checkpatch,
    fixes,
    kerneldoc,
    maintainers,
    notes,
    signoff,
)
from kseries.stages.checks.common import Job
from kseries.stages.checks.inputs import mailed_series, recipients

RULES = (checkpatch.RULE, signoff.RULE, fixes.RULE, maintainers.RULE, kerneldoc.RULE,
         basecommit.RULE)


@dataclass(frozen=True)
class ChecksOptions:
    # A notes file whose marked section is rewritten from the result (None: none).
    notes: Path | None = None


def repo_of(state: RunState, applied: ApplyResult) -> Path:
    """Where the commits and the scripts are: the scratch worktree; for a series already in
    the tree's history the apply stage makes none, and the tree is only read."""
    if (applied.worktree / ".git").exists():
        return applied.worktree
    assert state.tree is not None  # apply ran, so the tree stage passed
    return state.tree.path


def run_rules(job: Job, scratch: Path) -> list[Check]:
    """Every rule: per patch, per touched file, per series (in that order in the report)."""
    no_history = fixes.history(job.repo, job.base)
    checks: list[Check] = []
    for patch in job.patches:
        progress(f"checks: patch {patch.index}/{len(job.patches)} {patch.subject}")
        checks += [checkpatch.check(job, patch, no_history), signoff.check(job, patch),
                   fixes.check(job, patch, no_history),
                   maintainers.check(job, patch, recipients(job.series, patch.index))]
    sources = kerneldoc.touched_sources(job)
    progress(f"checks: kernel-doc on {len(sources)} touched files, base and head")
    checks += [kerneldoc.check(job, path, scratch) for path in sources]
    checks.append(basecommit.check(job))
    return checks


def tally(checks: Sequence[Check]) -> str:
    """'checkpatch 4 pass, maintainers 4 warn, ...': each rule's statuses, in rule order."""
    parts = []
    for rule in RULES:
        counts = Counter(c.status for c in checks if c.rule == rule)
        if counts:
            parts.append(f"{rule} " + "/".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return ", ".join(parts)


def summary(checks: Sequence[Check]) -> str:
    """The tally, led by the first worst finding when there is one (what to look at first)."""
    order = ("error", "fail", "warn")
    worst = next((c for status in order for c in checks if c.status == status), None)
    lead = f"{worst.name}: {worst.summary}; " if worst is not None else ""
    return f"{lead}{tally(checks)}"


def checks_stage(state: RunState, options: ChecksOptions) -> Stage:
    applied = state.applied
    assert applied is not None  # needs apply
    if options.notes is not None:
        notes.check_notes(options.notes)  # a bad --notes fails before the work, not after
    logs = state.log_dir() / "checks"
    shutil.rmtree(logs, ignore_errors=True)  # ours: logs of an earlier run must not mix in
    with stopwatch() as took, tempfile.TemporaryDirectory(prefix="kseries-checks-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        job = Job(repo_of(state, applied), applied.base, applied.head, applied.patches,
                  mailed_series(applied), logs, home)
        checks = run_rules(job, Path(tmp))
    stage = stage_from_checks("checks", checks, took[0], summary(checks),
                              data={"base": applied.base, "head": applied.head,
                                    "repo": str(job.repo),
                                    "notes": str(options.notes) if options.notes else None})
    if options.notes is not None:
        notes.write_notes(options.notes, stage)
        progress(f"checks: rewrote the generated section of {options.notes}")
    return stage


def render(stage: Stage) -> list[str]:
    """What `kseries checks` prints: one line per check."""
    return [f"{c.status.upper():5} {c.rule or '':12} {c.step or '':26} {c.summary}"
            for c in stage.checks]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notes", type=Path, metavar="FILE",
                        help=f"also rewrite the section of FILE between '{notes.BEGIN}' and "
                             f"'{notes.END}' (e.g. MAINTAINERS-notes.md) from the result")


def options_from_args(args: argparse.Namespace, _ctx: Context) -> ChecksOptions:
    # Resolved here: the stage runs with another working directory than the caller's.
    return ChecksOptions(args.notes.resolve() if args.notes is not None else None)


STAGE: StageDef[ChecksOptions] = StageDef(
    name="checks", help="checkpatch, Signed-off-by, Fixes:, kernel-doc, get_maintainer and "
    "base-commit of every patch (what patch bots run first)", run=checks_stage,
    from_args=options_from_args, for_verify=lambda _ctx, _arches: ChecksOptions(),
    to_args=lambda o: ["--notes", str(o.notes)] if o.notes is not None else [],
    configure=configure_parser, needs=lambda _o: ("apply",),
    tools=lambda _o: ("git", "perl"), render=render)
