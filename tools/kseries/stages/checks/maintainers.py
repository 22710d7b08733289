"""Rule maintainers: did each patch go to everyone scripts/get_maintainer.pl names for it?

get_maintainer runs on the patch as mailed (`git format-patch -1`, on stdin) in the scratch
worktree, from MAINTAINERS only: --no-git and --no-git-fallback (the default tree has no
history, and commit signers are suggestions, not routing), --no-rolestats with --roles (who,
and why, without the git statistics). Each name it gives, maintainer, reviewer or list, must
be among the patch's To/Cc, the cover letter's To/Cc, or be its sender; a missing one is a
warning naming who is missing. Recipients the mail does not record are a warning too: the
routing cannot be confirmed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kseries.core.proc import last_line, run
from kseries.core.report import Check, Status, stopwatch
from kseries.series.apply import AppliedPatch
from kseries.stages.checks.common import SCRIPT_TIMEOUT_S, Job, missing_script, patch_check
from kseries.stages.checks.inputs import Recipients

RULE = "maintainers"
SCRIPT = "get_maintainer.pl"
ARGS = ("--no-git", "--no-git-fallback", "--no-rolestats", "--roles")
# 'Name <addr> (role)' for people, 'addr (role)' for lists; a role may hold parentheses
# ("maintainer:MEMORY HOT(UN)PLUG"), an address never does.
PERSON_RE = re.compile(r"^(?P<who>[^<>]*<(?P<addr>[^<>\s]+)>)(?:\s+\((?P<role>.*)\))?$")
LIST_RE = re.compile(r"^(?P<addr>[^\s<>()]+@[^\s<>()]+)(?:\s+\((?P<role>.*)\))?$")


@dataclass(frozen=True)
class Named:
    """One answer of get_maintainer: who (as it prints them), their address, their role."""

    who: str
    address: str
    role: str = ""

    def describe(self) -> str:
        return f"{self.who} ({self.role})" if self.role else self.who


def parse(output: str) -> list[Named]:
    named = []
    for line in output.splitlines():
        found = PERSON_RE.match(line.strip()) or LIST_RE.match(line.strip())
        if found is not None:
            who = found.group("who") if "who" in found.groupdict() else found.group("addr")
            named.append(Named(who.strip(), found.group("addr").lower(),
                               found.group("role") or ""))
    return named


def missing(named: list[Named], sent: Recipients) -> list[Named]:
    return [n for n in named if n.address not in sent.addresses]


def verdict(named: list[Named], sent: Recipients) -> tuple[Status, str]:
    """(status, summary) of the patch's recipients against get_maintainer's NAMED."""
    if not named:
        return "pass", "get_maintainer names nobody for this patch"
    if sent.unknown:
        return "warn", (f"recipients unknown: {sent.unknown}; get_maintainer names "
                        f"{len(named)}: {', '.join(n.who for n in named)}")
    absent = missing(named, sent)
    if absent:
        return "warn", (f"{len(absent)} of {len(named)} named by get_maintainer not in "
                        f"To/Cc: {', '.join(n.who for n in absent)}")
    return "pass", f"all {len(named)} named by get_maintainer are in To/Cc"


def check(job: Job, patch: AppliedPatch, sent: Recipients) -> Check:
    log = job.log(RULE, f"patch {patch.index}")
    if reason := missing_script(job, SCRIPT) or (
            "" if (job.repo / "MAINTAINERS").is_file() else "the tree has no MAINTAINERS"):
        return patch_check(RULE, patch, "skip", reason, log)
    args = ["perl", f"scripts/{SCRIPT}", *ARGS]
    with stopwatch() as took:
        proc = run(args, cwd=job.repo, env=job.env(), stdin_file=job.patch_file(patch),
                   timeout_s=SCRIPT_TIMEOUT_S, check=False, log=log)
    reproducer = job.reproducer(args, patch)
    if proc.returncode != 0:
        return patch_check(RULE, patch, "error", f"{SCRIPT} failed (exit {proc.returncode}): "
                           f"{last_line(proc.stdout)}", log, reproducer=reproducer,
                           duration_s=took[0])
    named = parse(proc.stdout)
    status, summary = verdict(named, sent)
    return patch_check(RULE, patch, status, summary, log,
                       reproducer=reproducer, duration_s=took[0],
                       data={"named": [n.describe() for n in named],
                             "missing": [n.who for n in missing(named, sent)]
                             if not sent.unknown else [],
                             "recipients_unknown": sent.unknown})
