"""Rule maintainers: did each patch go to everyone scripts/get_maintainer.pl names for it?

get_maintainer runs on the patch as mailed (`git format-patch -1`, on stdin) in the scratch
worktree, the way kernel/maintainers.py runs it for every caller (from MAINTAINERS only).
Each name it gives, maintainer, reviewer or list, must be among the patch's To/Cc, the cover
letter's To/Cc, or be its sender; a missing one is a warning naming who is missing.
Recipients the mail does not record are a warning too: the routing cannot be confirmed.
"""

from __future__ import annotations

from kseries.core.proc import last_line
from kseries.core.report import Check, Status, stopwatch
from kseries.kernel.maintainers import SCRIPT, Named, command, parse, run_on
from kseries.series.apply import AppliedPatch
from kseries.stages.checks.common import Job, missing_script, patch_check
from kseries.stages.checks.inputs import Recipients

RULE = "maintainers"


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
    args = command()
    with stopwatch() as took:
        proc = run_on(job.repo, job.patch_file(patch), job.home, log=log)
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
