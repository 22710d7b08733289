"""`kseries merge DIR...`: the job reports of one plan as the report.json a serial verify
writes. Each job's --out holds job.json (which job it ran): its stage is taken from there,
and a stage run per arch is put back together by the stage's own merge (StageDef.merge:
the build stage redoes coverage and bisect over every arch, vmtest names the second arch's
checks as one run does). Stages every job ran (tree, apply) come from the first job; they
must agree on the head, or the jobs did not verify the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kseries.core.errors import KseriesError
from kseries.core.report import REPORT_NAME, Report, Stage, load_report, utc_now, worst
from kseries.stages.registry import BY_NAME, STAGES

JOB_MARK = "job.json"


@dataclass(frozen=True)
class JobResult:
    """One job's report and, from job.json, which job it was (None: a plain report dir)."""

    path: Path
    report: Report
    job_id: str | None
    stage: str | None
    index: int


def read_job(path: Path, position: int) -> JobResult:
    report = load_report(path)
    if report is None:
        raise KseriesError(f"{path} holds no kseries report ({REPORT_NAME}); pass the --out "
                           "directories of kseries job")
    mark = path / JOB_MARK
    if not mark.is_file():
        return JobResult(path, report, None, None, position)
    try:
        data = json.loads(mark.read_text())
        return JobResult(path, report, str(data["id"]), str(data["stage"]),
                         int(data.get("index", position)))
    except (ValueError, KeyError, TypeError) as err:
        raise KseriesError(f"{mark} is damaged ({err}); run that job again") from None


def merge_jobs(results: Sequence[JobResult]) -> Report:
    """One report from the jobs' reports (see the module docstring)."""
    if not results:
        raise KseriesError("nothing to merge: pass the --out directories of the jobs")
    ordered = sorted(results, key=lambda r: r.index)
    first = ordered[0].report
    for other in ordered[1:]:
        if not other.report.same_subject(first):
            raise KseriesError(f"{other.path} is about {other.report.series} "
                               f"{other.report.revision} on {other.report.tree}, not "
                               f"{first.series} {first.revision} on {first.tree}: merge "
                               "the jobs of one plan")
    check_same_head(ordered)
    merged = Report(first.series, first.revision, first.tree, started=min(
        r.report.started for r in ordered), ended=utc_now())
    for result in ordered:
        merged.tools.update(result.report.tools)
    for stage in STAGES:
        found = stages_named(stage.name, ordered)
        if not found:
            continue
        if len(found) == 1 or stage.merge is None:
            merged.add(found[0] if len(found) == 1 else same_or_first(found))
        else:
            merged.add(stage.merge(found))
    return merged


def stages_named(name: str, results: Sequence[JobResult]) -> list[Stage]:
    """NAME's stage from each job that ran it (a job ran its own stage; the shared ones,
    tree and apply, every job did), in plan order."""
    found = []
    for result in results:
        stage = result.report.stage(name)
        if stage is None:
            continue
        if result.stage is None or result.stage == name or name not in BY_NAME \
                or name in ("tree", "apply"):
            found.append(stage)
    return found


def same_or_first(stages: Sequence[Stage]) -> Stage:
    """A stage several jobs ran alike (tree, apply): the first, with the worst status."""
    return replace(stages[0], status=worst([s.status for s in stages]))


def check_same_head(results: Sequence[JobResult]) -> None:
    heads = set()
    for result in results:
        applied = result.report.stage("apply")
        if applied is not None and applied.data.get("head"):
            heads.add(str(applied.data["head"]))
    if len(heads) > 1:
        raise KseriesError(f"the jobs applied the series to different heads "
                           f"({', '.join(sorted(heads))}): merge the jobs of one plan, run "
                           "on one tree")
