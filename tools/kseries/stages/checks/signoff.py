"""Rule signoff: the author of each commit certified it (Documentation/process/
submitting-patches.rst, "Sign your work"): a Signed-off-by: of the same person.

The person is matched on the e-mail address, case-insensitively (addresses are what the DCO
trail follows); the same address under another name is a warning, as checkpatch says
"From:/Signed-off-by: name mismatch". No Signed-off-by: of the author at all is a failure.
"""

from __future__ import annotations

import re

from kseries.core.report import Check, Status
from kseries.series.apply import AppliedPatch
from kseries.stages.checks.common import Job, patch_check, write_log

RULE = "signoff"
SOB_RE = re.compile(r"^Signed-off-by:[ \t]*(.*?)[ \t]*<([^<>\s]+)>[ \t]*$",
                    re.MULTILINE | re.IGNORECASE)


def signoffs(message: str) -> list[tuple[str, str]]:
    """(name, email) of every Signed-off-by: line of MESSAGE, in order."""
    return [(name.strip().strip('"'), email) for name, email in SOB_RE.findall(message)]


def same_name(one: str, other: str) -> bool:
    return " ".join(one.split()).casefold() == " ".join(other.split()).casefold()


def judge(author: tuple[str, str], found: list[tuple[str, str]]) -> tuple[Status, str]:
    name, email = author
    who = f"{name} <{email}>"
    if not found:
        return "fail", f"no Signed-off-by: at all; the author {who} must sign off"
    mine = [n for n, e in found if e.lower() == email.lower()]
    if not mine:
        others = ", ".join(f"{n} <{e}>" for n, e in found)
        return "fail", f"no Signed-off-by: of the author {who} (found: {others})"
    if not any(same_name(n, name) for n in mine):
        return "warn", f"Signed-off-by: {mine[0]} <{email}> has the author's address but " \
                       f"not the author's name {name!r}"
    return "pass", f"signed off by the author {who}"


def check(job: Job, patch: AppliedPatch) -> Check:
    commit = job.commit(patch.commit)
    found = signoffs(commit.message)
    status, summary = judge((commit.name, commit.email), found)
    log = write_log(job.log(RULE, f"patch {patch.index}"),
                    [f"commit {patch.commit}", f"author: {commit.name} <{commit.email}>",
                     *(f"Signed-off-by: {n} <{e}>" for n, e in found),
                     f"{status}: {summary}"])
    return patch_check(RULE, patch, status, summary, log,
                       data={"signoffs": [f"{n} <{e}>" for n, e in found]})
