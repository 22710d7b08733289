"""Rule checkpatch: the tree's own scripts/checkpatch.pl --strict on each applied commit.

The commit goes in as `git format-patch -1` mails it (on stdin), so checkpatch sees what a
maintainer gets: the From: line, the message, the trailers and the diff. It runs in the
scratch worktree, so it uses that tree (its spelling list, its git history for commit ids).
ERROR is a failure, WARNING and CHECK (the --strict findings) are warnings.

In a tree without history (the default tree is a one-commit import) checkpatch warns
"Unknown commit id" for every upstream commit a message cites, which says nothing about the
patch: there those warnings are not counted, and the summary says how many ids were not
checked and why (the log keeps checkpatch's output; the fixes rule still reports each
Fixes: id the tree cannot tell).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from kseries.core.proc import run
from kseries.core.report import Check, Status, stopwatch
from kseries.series.apply import AppliedPatch
from kseries.stages.checks.common import SCRIPT_TIMEOUT_S, Job, missing_script, patch_check

RULE = "checkpatch"
SCRIPT = "checkpatch.pl"
ARGS = ("--strict", "--color=never", "-")
UNKNOWN_ID = "Unknown commit id"
FINDING_RE = re.compile(r"^(ERROR|WARNING|CHECK): (.*)$")
WHERE_RE = re.compile(r"^#\d+: FILE: (.+?):?$")
TOTAL_RE = re.compile(r"^total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?"
                      r"\d+ lines checked$", re.MULTILINE)


@dataclass(frozen=True)
class Finding:
    level: str  # ERROR, WARNING or CHECK
    message: str
    where: str = ""  # file:line when checkpatch names one

    def describe(self) -> str:
        return f"{self.level}: {self.message}" + (f" ({self.where})" if self.where else "")


@dataclass(frozen=True)
class Result:
    errors: int
    warnings: int
    checks: int
    findings: tuple[Finding, ...]

    @property
    def status(self) -> Status:
        return "fail" if self.errors else "warn" if self.warnings or self.checks else "pass"

    def counts(self) -> str:
        return f"{self.errors} errors, {self.warnings} warnings, {self.checks} checks"

    def summary(self) -> str:
        first = f"; first: {self.findings[0].describe()}" if self.findings else ""
        return f"{self.counts()}{first}"


def parse(output: str) -> Result | None:
    """checkpatch's findings and its 'total:' counts; None without a 'total:' line (it did
    not get to the end: a crash, or not a patch)."""
    total = TOTAL_RE.search(output)
    if total is None:
        return None
    lines = output.splitlines()
    findings = []
    for number, line in enumerate(lines):
        if found := FINDING_RE.match(line):
            after = lines[number + 1] if number + 1 < len(lines) else ""
            where = WHERE_RE.match(after)
            findings.append(Finding(found.group(1), found.group(2).strip(),
                                    where.group(1) if where else ""))
    return Result(int(total.group(1)), int(total.group(2)), int(total.group(3) or 0),
                  tuple(findings))


def without_unknown_ids(result: Result) -> tuple[Result, int]:
    """RESULT without checkpatch's "Unknown commit id" warnings, and how many there were."""
    kept = tuple(f for f in result.findings
                 if not (f.level == "WARNING" and f.message.startswith(UNKNOWN_ID)))
    dropped = len(result.findings) - len(kept)
    return replace(result, warnings=result.warnings - dropped, findings=kept), dropped


def check(job: Job, patch: AppliedPatch, no_history: str = "") -> Check:
    """NO_HISTORY: why the tree cannot tell upstream commit ids ('' when it can)."""
    log = job.log(RULE, f"patch {patch.index}")
    if reason := missing_script(job, SCRIPT):
        return patch_check(RULE, patch, "skip", reason, log)
    args = ["perl", f"scripts/{SCRIPT}", *ARGS]
    with stopwatch() as took:
        proc = run(args, cwd=job.repo, env=job.env(), stdin_file=job.patch_file(patch),
                   timeout_s=SCRIPT_TIMEOUT_S, check=False, log=log)
    result = parse(proc.stdout)
    reproducer = job.reproducer(args, patch)
    if result is None:
        return patch_check(RULE, patch, "error", f"{SCRIPT} ended (exit {proc.returncode}) "
                           f"without its 'total:' line; see {log}", log, reproducer=reproducer,
                           duration_s=took[0])
    note = ""
    if no_history:
        result, dropped = without_unknown_ids(result)
        note = f"; {dropped} commit ids not checked: {no_history}" if dropped else ""
    return patch_check(RULE, patch, result.status, result.summary() + note, log,
                       reproducer=reproducer, duration_s=took[0],
                       data={"errors": result.errors, "warnings": result.warnings,
                             "checks": result.checks,
                             "findings": [f.describe() for f in result.findings]})
