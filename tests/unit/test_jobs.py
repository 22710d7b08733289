"""verify as jobs: the per-arch split of a stage's options, and merging the jobs' stages
back into what one serial run writes (fixture reports; the real run is tests/real)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.core.report import Check, Report, Stage
from kseries.jobs.gitlab import write_pipeline
from kseries.jobs.merge import JOB_MARK, merge_jobs, read_job
from kseries.jobs.plan import Job, JobPlan
from kseries.kernel.arches import get_arch
from kseries.stages.build.merge import merge_arch_stages, split_by_arch
from kseries.stages.build.options import BuildOptions
from kseries.stages.kunit.stage import KunitOptions
from kseries.stages.kunit.stage import split_by_arch as kunit_split
from kseries.stages.vmtest.guest import VmOptions
from kseries.stages.vmtest.stage import merge_jobs as vm_merge
from kseries.stages.vmtest.stage import split_by_arch as vm_split
from tests.conftest import ROOT, assert_one_line_error, run_cli


def check(name: str, status: str = "pass", **extra: object) -> Check:
    return Check(name=name, status=status, summary=f"{name} {status}", **extra)  # type: ignore[arg-type]


def build_stage(arch: str, cell: str, first_bad: dict[str, str] | None = None) -> Stage:
    return Stage(name="build", status="pass", summary="", duration_s=1.0, checks=(
        check(f"{arch} config"), check(f"{arch} patch-2"), check("coverage", "warn"),
        check("bisect")), data={"coverage": {"mm/a.c": {arch: {"status": cell, "reason": ""}}},
                                "arches": {arch: {}}, "first_bad": first_bad or {}})


def test_build_splits_per_arch_and_merges_with_coverage_redone() -> None:
    options = BuildOptions((get_arch("x86_64"), get_arch("s390")))
    assert [(a, [x.name for x in o.arches]) for a, o in split_by_arch(options)] == [
        ("x86_64", ["x86_64"]), ("s390", ["s390"])]
    merged = merge_arch_stages([build_stage("x86_64", "built"),
                                build_stage("s390", "not-buildable", {"s390": "patch 2"})])
    names = [c.name for c in merged.checks]
    assert names == ["x86_64 config", "x86_64 patch-2", "s390 config", "s390 patch-2",
                     "coverage", "bisect"]
    coverage, bisect = merged.checks[-2:]
    # each job alone warned (a file not built on its one arch may be built elsewhere);
    # over both arches the file is built, but two of four arches is still "some"
    assert coverage.status == "pass"
    assert bisect.status == "fail" and bisect.summary == "s390: first broken by patch 2"
    assert merged.status == "fail" and merged.duration_s == 2.0
    assert merged.data["coverage"]["mm/a.c"] == {
        "x86_64": {"status": "built", "reason": ""},
        "s390": {"status": "not-buildable", "reason": ""}}


def test_kunit_and_vmtest_split_as_one_run_does() -> None:
    kunit = kunit_split(KunitOptions(("x86_64", "arm64"), ("x86_64",), every_commit=True))
    assert [(a, o.arches, o.base_arches, o.every_commit) for a, o in kunit] == [
        ("x86_64", ("x86_64",), ("x86_64",), True), ("arm64", ("arm64",), (), True)]
    vm = vm_split(VmOptions(arch="x86_64", mutants=True, every_commit=True,
                            more_arches=("arm64",)))
    assert [(a, o.arch, o.base, o.mutants, o.every_commit, o.more_arches) for a, o in vm] == [
        ("x86_64", "x86_64", True, True, True, ()), ("arm64", "arm64", False, False, False, ())]


def test_vmtest_merge_keeps_one_set_of_reasoned_skips_and_names_the_second_arch() -> None:
    def stage(arch: str) -> Stage:
        return Stage(name="vmtest", status="pass", summary=arch, duration_s=3.0, checks=(
            check(f"{arch}.boot.iomem_virtio_mem"), check("series guest"),
            check("powerpc guest", "skip"), check("s390 guest", "skip")), data={"arch": arch})
    merged = vm_merge([stage("x86_64"), stage("arm64")])
    assert [c.name for c in merged.checks] == [
        "x86_64.boot.iomem_virtio_mem", "series guest", "powerpc guest", "s390 guest",
        "arm64.boot.iomem_virtio_mem", "arm64: series guest"]
    assert set(merged.data["arches"]) == {"x86_64", "arm64"}


def job_dir(root: Path, job: str, stage: Stage, index: int, head: str = "abc",
            revision: str = "v3") -> Path:
    out = root / job
    apply = Stage(name="apply", status="pass", summary="", duration_s=0.1,
                  data={"head": head, "base": "b"})
    Report("s", revision, "t", [apply, stage]).write(out)
    (out / JOB_MARK).write_text(json.dumps({"id": job, "stage": stage.name, "index": index}))
    return out


def test_merge_takes_each_jobs_own_stage_in_plan_order(tmp_path: Path) -> None:
    callers = Stage(name="callers", status="pass", summary="", duration_s=1.0,
                    checks=(check("every caller converted"),))
    seeded = job_dir(tmp_path, "callers", callers, 2)
    # the callers job was seeded with the merged builds: its build stage is not taken again
    report = json.loads((seeded / "report.json").read_text())
    report["stages"].insert(1, json.loads(json.dumps(
        {**report["stages"][1], "name": "build", "checks": []})))
    (seeded / "report.json").write_text(json.dumps(report))
    dirs = [job_dir(tmp_path, "build-s390", build_stage("s390", "built"), 1), seeded,
            job_dir(tmp_path, "build-x86_64", build_stage("x86_64", "built"), 0)]
    merged = merge_jobs([read_job(d, i) for i, d in enumerate(dirs)])
    assert [s.name for s in merged.stages] == ["apply", "build", "callers"]
    build = merged.stage("build")
    assert build is not None and build.checks[0].name == "x86_64 config"
    assert len([c for c in build.checks if c.name == "coverage"]) == 1


def test_jobs_of_different_runs_do_not_merge(tmp_path: Path) -> None:
    one = job_dir(tmp_path, "a", build_stage("x86_64", "built"), 0)
    other = job_dir(tmp_path, "b", build_stage("s390", "built"), 1, revision="v2")
    with pytest.raises(KseriesError, match="merge the jobs of one plan"):
        merge_jobs([read_job(one, 0), read_job(other, 1)])
    moved = job_dir(tmp_path, "c", build_stage("s390", "built"), 1, head="def")
    with pytest.raises(KseriesError, match="different heads"):
        merge_jobs([read_job(one, 0), read_job(moved, 1)])


def test_merge_command_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("merge", tmp_path / "nothing", "--out", tmp_path / "o"),
                          "holds no kseries report", "kseries job")
    good = job_dir(tmp_path, "a", build_stage("x86_64", "built"), 0)
    (good / JOB_MARK).write_text("{not json")
    assert_one_line_error(run_cli("merge", good, "--out", tmp_path / "o"),
                          "job.json is damaged", "run that job again")


def test_merge_command_writes_the_report_and_exits_with_its_status(tmp_path: Path) -> None:
    dirs = [job_dir(tmp_path, "build-x86_64", build_stage("x86_64", "built"), 0),
            job_dir(tmp_path, "build-s390", build_stage("s390", "built", {"s390": "p2"}), 1)]
    result = run_cli("merge", *dirs, "--out", tmp_path / "merged", "--format", "junit")
    assert result.returncode == 1, result.stderr  # the bisect failure
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert merged["status"] == "fail" and merged["exit_code"] == 1
    assert (tmp_path / "merged" / "export" / "junit.xml").is_file()


def test_job_needs_the_results_it_reads(tmp_path: Path) -> None:
    plan = tmp_path / "jobs.json"
    plan.write_text(json.dumps({"schema": 1, "series": "s", "revision": "v3",
                                "base_commit": "b", "inputs": {}, "jobs": [
                                    {"id": "build-x86_64", "stage": "build", "arch": "x86_64",
                                     "argv": ["build", "--arch=x86_64"], "needs": []},
                                    {"id": "callers", "stage": "callers", "arch": None,
                                     "argv": ["callers"], "needs": ["build-x86_64"]}]}))
    assert_one_line_error(run_cli("job", "callers", "--plan-file", plan, "--out",
                                  tmp_path / "o"), "needs the results of build-x86_64",
                          "--from DIR")
    assert_one_line_error(run_cli("job", "kunit-x86_64", "--plan-file", plan, "--out",
                                  tmp_path / "o"), "no job 'kunit-x86_64' in the plan")
    plan.write_text("[]")
    assert_one_line_error(run_cli("job", "callers", "--plan-file", plan, "--out",
                                  tmp_path / "o"), "is not a kseries plan")



GITLAB_CI_LOCAL = ROOT / "tools" / "node" / "node_modules" / ".bin" / "gitlab-ci-local"


def gitlab_ci_local(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not GITLAB_CI_LOCAL.is_file():
        pytest.fail(f"{GITLAB_CI_LOCAL} is missing: make setup installs it (npm ci)")
    return subprocess.run([str(GITLAB_CI_LOCAL), *args], cwd=repo, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_gitlab_pipeline_passes_gitlabs_schema_with_every_job(small_repo: Path) -> None:
    """gitlab-ci-local validates the file against GitLab's CI schema and lists its jobs:
    the matrix over the jobs that need nothing, one job per job that reads others, the
    merge last."""
    plan = JobPlan("s", "v3", "b", {}, (
        Job("checks", "checks", None, ("checks",)),
        Job("build-x86_64", "build", "x86_64", ("build", "--arch=x86_64")),
        Job("callers", "callers", None, ("callers",), ("build-x86_64",))))
    write_pipeline(plan, small_repo / ".gitlab-ci.yml", kseries="kseries")
    listed = gitlab_ci_local(small_repo, "--list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "json schema validated" in listed.stderr
    rows = {line.split("  ")[0].strip() for line in listed.stdout.splitlines()}
    assert {"kseries-job: [checks]", "kseries-job: [build-x86_64]", "kseries-callers",
            "kseries-merge"} <= rows
    preview = gitlab_ci_local(small_repo, "--preview").stdout
    assert ("kseries job callers --plan-file jobs.json --out jobs/callers "
            "--from jobs/build-x86_64") in preview
    assert "kseries merge jobs/checks jobs/build-x86_64 jobs/callers --out out" in preview
