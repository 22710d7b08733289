"""Rule base-commit (once per series): the series says what it applies to.

`git format-patch --base` and `b4 prep` write a `base-commit:` trailer after the cover
letter (or the first patch); without it a maintainer or a bot has to guess the base.
"""

from __future__ import annotations

from kseries.core.report import Check
from kseries.stages.checks.common import Job, rule_check, write_log

RULE = "base-commit"


def check(job: Job) -> Check:
    series = job.series
    log = job.log(RULE, "series")
    if series is None:
        write_log(log, ["the series as mailed is not known"])
        return rule_check(RULE, "series", "skip", "the series as mailed is not known; cannot "
                          "read its base-commit: trailer", log, name=RULE)
    found = series.base_commit
    if found is None:
        write_log(log, [f"no base-commit: line in {series.path}"])
        return rule_check(RULE, "series", "warn", "no base-commit: trailer (git format-patch "
                          "--base=REV or b4 prep writes one)", log, name=RULE)
    applied_on = "the commit it was applied on" if job.base.startswith(found) else (
        f"not {job.base[:12]}, where it was applied")
    write_log(log, [f"base-commit: {found}", f"applied on {job.base}"])
    return rule_check(RULE, "series", "pass", f"base-commit: {found[:12]}, {applied_on}", log,
                      name=RULE, data={"base_commit": found})

