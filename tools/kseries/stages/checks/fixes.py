"""Rule fixes: every Fixes: tag is well formed and names a commit the tree knows.

Well formed is what submitting-patches.rst asks for and checkpatch checks: one line,
`Fixes: <at least 12 hex digits> ("<the commit's subject>")`. A tag that names a commit the
tree knows must carry that commit's subject. A commit the tree does not know is a failure in
a tree with history; the default tree is one commit (a tarball import) and a shallow clone
lacks history too, so there it is a warning saying the tree cannot tell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kseries.core import git as g
from kseries.core.report import Check, Status, worst
from kseries.series.apply import AppliedPatch
from kseries.stages.checks.common import Job, patch_check, write_log

RULE = "fixes"
TAG_RE = re.compile(r"^[ \t]*fixes[ \t]*:", re.IGNORECASE)
WELL_FORMED_RE = re.compile(r'^Fixes: ([0-9a-f]{12,40}) \("(.+)"\)$')
WANTED = 'Fixes: <12+ hex digits> ("subject") on one line'


@dataclass(frozen=True)
class Verdict:
    line: str
    status: Status
    why: str


def fixes_lines(message: str) -> list[str]:
    return [line.rstrip() for line in message.splitlines() if TAG_RE.match(line)]


def history(repo: Path, base: str) -> str:
    """'full', or why the tree cannot tell whether a commit is upstream ('' when it can)."""
    shallow = g.git(repo, "rev-parse", "--is-shallow-repository", check=False)
    if shallow == "true":
        return "the tree is a shallow clone"
    if g.git(repo, "rev-list", "--count", "--max-count=2", base) == "1":
        return "the tree has no history (a one-commit import)"
    return ""


def subject_of(repo: Path, sha: str) -> str | None:
    """The subject of commit SHA (a prefix will do), or None when REPO does not know it."""
    known = g.run_git(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False)
    if known.returncode != 0:
        return None
    return g.git(repo, "log", "-1", "--format=%s", sha)


def judge(line: str, subject: str | None, no_history: str) -> Verdict:
    """LINE's verdict, given the SUBJECT of the commit it names (None: unknown) and why the
    tree cannot tell (NO_HISTORY, '' when it can)."""
    tag = WELL_FORMED_RE.match(line)
    if tag is None:
        return Verdict(line, "fail", f"malformed {line!r}; want {WANTED}")
    sha, said = tag.groups()
    if subject is None and no_history:
        return Verdict(line, "warn", f"{sha} is not in the tree, which cannot tell: {no_history}")
    if subject is None:
        return Verdict(line, "fail", f"{sha} is not a commit of the tree")
    if subject != said:
        return Verdict(line, "fail", f"{sha} is \"{subject}\", not \"{said}\"")
    return Verdict(line, "pass", f"{sha} (\"{subject}\") is in the tree")


def verdicts(job: Job, message: str, no_history: str) -> list[Verdict]:
    found = []
    for line in fixes_lines(message):
        tag = WELL_FORMED_RE.match(line)
        subject = subject_of(job.repo, tag.group(1)) if tag else None
        found.append(judge(line, subject, no_history))
    return found


def check(job: Job, patch: AppliedPatch, no_history: str) -> Check:
    found = verdicts(job, job.commit(patch.commit).message, no_history)
    status = worst([v.status for v in found]) if found else "pass"
    first = next((v for v in found if v.status == status), None)
    summary = "no Fixes: tag" if first is None else (
        f"{first.why}" + (f" (+{len(found) - 1} more Fixes:)" if len(found) > 1 else ""))
    log = write_log(job.log(RULE, f"patch {patch.index}"),
                    [f"commit {patch.commit}", *(f"{v.status}: {v.line}: {v.why}" for v in found),
                     f"{status}: {summary}"])
    return patch_check(RULE, patch, status, summary, log,
                       data={"fixes": [{"line": v.line, "status": v.status, "why": v.why}
                                       for v in found]})
