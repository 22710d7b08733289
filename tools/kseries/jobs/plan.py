"""`kseries plan`: verify cut into jobs that any CI matrix can run, one per stage and, for
the stages that run per arch, per arch (StageDef.split), each a plain kseries command line.

Every job runs the stages it needs itself (tree, apply: a scratch worktree, cheap); a job
whose stage reads another stage's results names those jobs in `needs` (callers reads the
build stage's per-arch coverage), and `kseries job` lays their reports into its --out
before it starts. `inputs` says what the results depend on, so that a CI system can key a
cache or tell two plans apart: the series' patch-ids, the base commit, the Kconfig
fragments, the kernel overlay and the tools' versions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from kseries.core import git as g
from kseries.core.context import Context
from kseries.core.errors import KseriesError
from kseries.core.paths import FRAGMENTS_DIR, OVERLAY_DIR
from kseries.core.pipeline import input_args
from kseries.core.report import write_json_atomic
from kseries.core.tools import tool_versions
from kseries.stages.registry import NO_SUBCOMMAND, STAGES

PLAN_SCHEMA = 1
PLAN_NAME = "jobs.json"
# Stages every job runs for itself (they are its needs), never jobs of their own.
EVERY_JOB_RUNS = ("tree", "apply")
# Stage -> the stages whose jobs it reads the results of.
READS_RESULTS_OF: Mapping[str, tuple[str, ...]] = {"callers": ("build",)}


@dataclass(frozen=True)
class Job:
    id: str  # "build-x86_64", "checks"
    stage: str
    arch: str | None
    argv: tuple[str, ...]  # kseries ARGV --out DIR runs it
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobPlan:
    series: str
    revision: str
    base_commit: str
    inputs: dict[str, Any]
    jobs: tuple[Job, ...]
    schema: int = PLAN_SCHEMA
    notes: tuple[str, ...] = field(default=())

    def job(self, job_id: str) -> Job:
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise KseriesError(f"no job {job_id!r} in the plan; its jobs: "
                           f"{', '.join(j.id for j in self.jobs)}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(ctx: Context, names: Sequence[str] | None = None,
              arches: Sequence[str] | None = None) -> JobPlan:
    """The jobs of `kseries verify [--stage NAMES] [--arch ARCHES]` on CTX's series, tree
    and revision (a stage that reads another's results brings that stage's jobs)."""
    common = input_args(ctx)
    wanted = set(names or [s.name for s in STAGES])
    wanted |= {need for name in list(wanted) for need in READS_RESULTS_OF.get(name, ())}
    only = tuple(arches) if arches else None
    jobs: list[Job] = []
    for stage in STAGES:
        if stage.name in EVERY_JOB_RUNS or stage.name not in wanted:
            continue
        options = stage.for_verify(ctx, only)
        parts = stage.split(options) if stage.split else ((None, options),)
        for arch, part in parts:
            command = ((stage.name, *common, *stage.to_args(part))
                       if stage.name not in NO_SUBCOMMAND
                       else ("verify", *common, "--stage", stage.name))
            jobs.append(Job(f"{stage.name}-{arch}" if arch else stage.name, stage.name, arch,
                            command))
    jobs = [replace(j, needs=tuple(o.id for o in jobs if o.stage in
                                   READS_RESULTS_OF.get(j.stage, ()))) for j in jobs]
    tree = ctx.tree()
    return JobPlan(ctx.config.name, ctx.revision_name, tree.base_commit,
                   plan_inputs(ctx, tree.path, jobs), tuple(jobs))


def plan_inputs(ctx: Context, tree: Path, jobs: Sequence[Job]) -> dict[str, Any]:
    mbox = ctx.mbox_path()
    patch_ids = [pid for pid, _ in g.patch_ids(tree, mbox.read_text(errors="replace"))]
    tools = sorted({t for s in STAGES for t in s.tools(s.for_verify(ctx, None))})
    return {"mbox": str(mbox), "patch_ids": patch_ids,
            "fragments": tree_hash(FRAGMENTS_DIR), "overlay": tree_hash(OVERLAY_DIR),
            "tools": tool_versions(tools), "jobs": len(jobs)}


def tree_hash(root: Path) -> str:
    """sha256 over every file below ROOT (relative name and content), in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def write_plan(plan: JobPlan, path: Path) -> Path:
    return write_json_atomic(path, plan.to_json())


def load_plan(path: Path) -> JobPlan:
    """The plan kseries plan wrote at PATH; a one-line error for anything else."""
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != PLAN_SCHEMA:
            raise KseriesError(f"{path} is a plan of schema {data.get('schema')!r}, not "
                               f"{PLAN_SCHEMA}; write it again with kseries plan")
        jobs = tuple(Job(j["id"], j["stage"], j["arch"], tuple(j["argv"]), tuple(j["needs"]))
                     for j in data["jobs"])
        return JobPlan(data["series"], data["revision"], data["base_commit"],
                       dict(data["inputs"]), jobs, notes=tuple(data.get("notes", ())))
    except FileNotFoundError:
        raise KseriesError(f"no plan at {path}; write one with kseries plan --out "
                           f"{path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise KseriesError(f"{path} is not a kseries plan ({err}); write it again with "
                           "kseries plan") from None
