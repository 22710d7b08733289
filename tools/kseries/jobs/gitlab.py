"""`kseries plan --format gitlab-ci`: the plan as a GitLab CI child pipeline. GitLab runs the
jobs (parallel:matrix over the ones that need nothing, one job for each that reads others'
results, artifacts = the jobs' --out directories) and a last job merges them; kseries
schedules nothing itself.

A job that ends with warnings only exits 250 (NIPA's retcode): allowed to fail with that
code, so GitLab shows it as a warning and the pipeline goes on. YAML is written as JSON
scalars inside block structure (every string double-quoted), which any YAML 1.1 or 1.2
reader takes, GitLab's and gitlab-ci-local's included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kseries.jobs.plan import PLAN_NAME, JobPlan

PIPELINE_NAME = "kseries-pipeline.yml"
JOBS_DIR = "jobs"
EXIT_WARN = 250


def pipeline(plan: JobPlan, kseries: str = "kseries", plan_file: str = PLAN_NAME,
             formats: Sequence[str] = ("junit",)) -> dict[str, Any]:
    """The child pipeline of PLAN as a mapping (see pipeline_yaml)."""
    first = [j.id for j in plan.jobs if not j.needs]
    later = [j for j in plan.jobs if j.needs]
    jobs: dict[str, Any] = {
        "stages": ["kseries-jobs", "kseries-after", "kseries-merge"],
        "kseries-job": {
            "stage": "kseries-jobs",
            "parallel": {"matrix": [{"JOB": first}]},
            "script": [f'{kseries} job "$JOB" --plan-file {plan_file} --out {JOBS_DIR}/"$JOB"'],
            "artifacts": {"when": "always", "paths": [f"{JOBS_DIR}/$JOB"]},
            "allow_failure": {"exit_codes": [EXIT_WARN]},
        },
    }
    for job in later:
        inputs = " ".join(f"--from {JOBS_DIR}/{need}" for need in job.needs)
        jobs[f"kseries-{job.id}"] = {
            "stage": "kseries-after",
            "needs": [{"job": "kseries-job", "artifacts": True}],
            "script": [f"{kseries} job {job.id} --plan-file {plan_file} --out "
                       f"{JOBS_DIR}/{job.id} {inputs}"],
            "artifacts": {"when": "always", "paths": [f"{JOBS_DIR}/{job.id}"]},
            "allow_failure": {"exit_codes": [EXIT_WARN]},
        }
    dirs = " ".join(f"{JOBS_DIR}/{j.id}" for j in plan.jobs)
    flags = " ".join(f"--format {f}" for f in formats)
    jobs["kseries-merge"] = {
        "stage": "kseries-merge",
        "when": "always",
        "script": [f"{kseries} merge {dirs} --out out {flags}".rstrip()],
        "artifacts": {"when": "always", "paths": ["out"],
                      **({"reports": {"junit": "out/export/junit.xml"}}
                         if "junit" in formats else {})},
        "allow_failure": {"exit_codes": [EXIT_WARN]},
    }
    return jobs


def pipeline_yaml(tree: Mapping[str, Any]) -> str:
    header = ("# kseries plan --format gitlab-ci: a child pipeline (trigger it with\n"
              "# trigger:include:artifact from the job that ran kseries plan)\n")
    return header + "".join(_block(tree, 0))


def _block(value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _scalar(item) or item == [] or item == {}:
                lines.append(f"{pad}{json.dumps(str(key))}: {_inline(item)}\n")
            else:
                lines.append(f"{pad}{json.dumps(str(key))}:\n")
                lines += _block(item, depth + 1)
    else:
        for item in value:
            if _scalar(item):
                lines.append(f"{pad}- {_inline(item)}\n")
            else:
                nested = _block(item, depth + 1)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines += nested[1:]
    return lines


def _scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple)


def _inline(value: Any) -> str:
    return json.dumps(value if not isinstance(value, tuple) else list(value))


def write_pipeline(plan: JobPlan, path: Path, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pipeline_yaml(pipeline(plan, **options)))
    return path
