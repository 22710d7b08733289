"""Rule kernel-doc: `scripts/kernel-doc -none -Wall` on every .c and .h file the series
touches, at the base and at the head; only warnings the series adds are reported.

W=1 builds run kernel-doc on the compiled .c files only, never on headers, so this is the
check that sees a header's kernel-doc. The two sides are compared as sets of messages with
file names and line numbers taken out: a warning that only moved is not new. Both sides are
read from git objects (not from the worktree, which a later stage may change) into a
directory of their own, and kernel-doc is given SRCTREE pointing there (it prefixes file
names with $SRCTREE when set, so an inherited one would point it elsewhere).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kseries.core import git as g
from kseries.core.proc import run
from kseries.core.report import Check, Status, stopwatch
from kseries.stages.checks.common import (
    SCRIPT_TIMEOUT_S,
    SOURCE_SUFFIXES,
    Job,
    missing_script,
    rule_check,
    text_at,
)

RULE = "kernel-doc"
SCRIPT = "kernel-doc"
ARGS = ("-none", "-Wall")
# "path:123: warning: text" (some messages have no line number, some no file name).
MESSAGE_RE = re.compile(r"^(?:.*?:\d+:\s*)?(?P<kind>warning|error):\s*(?P<text>.+)$",
                        re.IGNORECASE)
LINE_NUMBER_RE = re.compile(r"\bline \d+\b")
# Settings from a kernel build's environment that change what kernel-doc reports: empty
# values turn them off (perl reads "" as false).
QUIET_ENV = {"KCFLAGS": "", "KDOC_WERROR": "", "KBUILD_VERBOSE": ""}


@dataclass(frozen=True)
class Side:
    """What kernel-doc said about one file at one commit."""

    messages: frozenset[str]
    exists: bool = True


def touched_sources(job: Job) -> list[str]:
    """The .c and .h files any applied commit changes (from git, not from the mail)."""
    paths: set[str] = set()
    for patch in job.patches:
        names = g.git(job.repo, "diff-tree", "--no-commit-id", "--name-only", "-r",
                      patch.commit)
        paths.update(name for name in names.splitlines() if name.endswith(SOURCE_SUFFIXES))
    return sorted(paths)


def normalize(line: str) -> str | None:
    """LINE as a message kernel-doc prints, without where it is: 'warning: ...'; None for
    other output."""
    found = MESSAGE_RE.match(line.strip())
    if found is None:
        return None
    text = LINE_NUMBER_RE.sub("line N", found.group("text").strip())
    return f"{found.group('kind').lower()}: {text}"


def messages(output: str) -> frozenset[str]:
    return frozenset(m for line in output.splitlines() if (m := normalize(line)) is not None)


def run_side(job: Job, root: Path, rev: str, path: str, log: Path) -> Side:
    """kernel-doc on PATH as of REV, written under ROOT."""
    text = text_at(job.repo, rev, path)
    if text is None:
        return Side(frozenset(), exists=False)
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    proc = run(["perl", job.script(SCRIPT), *ARGS, path], cwd=root,
               env={**job.env(), **QUIET_ENV, "SRCTREE": str(root)},
               timeout_s=SCRIPT_TIMEOUT_S, check=False, log=log)
    return Side(messages(proc.stdout))


def verdict(path: str, base: Side, head: Side) -> tuple[Status, str, list[str]]:
    """Status, summary and the new messages of PATH."""
    new = sorted(head.messages - base.messages)
    before = (f"{len(base.messages)} at the base" if base.exists
              else "a new file")
    if not new:
        return "pass", f"{path}: no new kernel-doc warnings ({before})", new
    errors = [m for m in new if m.startswith("error:")]
    status: Status = "fail" if errors else "warn"
    return status, (f"{path}: {len(new)} new kernel-doc {'errors' if errors else 'warnings'} "
                    f"({before}); first: {(errors or new)[0]}"), new


def check(job: Job, path: str, scratch: Path) -> Check:
    log = job.log(RULE, path)
    if reason := missing_script(job, SCRIPT):
        return rule_check(RULE, path, "skip", reason, log)
    with stopwatch() as took:
        head = run_side(job, scratch / f"head-{job.head[:12]}", job.head, path, log)
        if not head.exists:
            return rule_check(RULE, path, "skip", f"{path}: deleted by the series", log)
        base = run_side(job, scratch / f"base-{job.base[:12]}", job.base, path, log)
    status, summary, new = verdict(path, base, head)
    return rule_check(RULE, path, status, summary, log, duration_s=took[0],
                      reproducer=job.reproducer(["perl", f"scripts/{SCRIPT}", *ARGS, path]),
                      data={"file": path, "new": new, "base": len(base.messages),
                            "head": len(head.messages)})
