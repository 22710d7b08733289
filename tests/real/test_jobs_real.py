"""verify as jobs on the real 6.12 tree: the build stage as four per-arch jobs and callers
as a job that reads them, merged, give the checks the serial commands give (statuses and
summaries; durations, logs and reproducers aside). Both runs take the build stage's
results from the same cache (a job on another machine would recompile, with a shared
compile cache)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kseries.kernel.tree import Tree
from tests.conftest import FIXTURES, ROOT, DefaultBuild

pytestmark = pytest.mark.realtree


def kseries(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kseries", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, check=False)


def checks_of(out: Path, stage: str) -> dict[str, tuple[str, str]]:
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    [found] = [s for s in report["stages"] if s["name"] == stage]
    return {c["name"]: (c["status"], c["summary"]) for c in found["checks"]}


def test_merged_jobs_give_the_serial_checks(default_build: DefaultBuild, tmp_path: Path) -> None:
    serial = tmp_path / "serial"
    assert default_build.result.returncode in (0, 250), default_build.result.stderr[-2000:]
    shutil.copytree(default_build.out, serial)  # the serial `kseries build`, then callers
    ran = kseries("callers", "--out", serial)
    assert ran.returncode in (0, 250), ran.stderr[-2000:]
    planned = kseries("plan", "--out", tmp_path / "plan")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads((tmp_path / "plan" / "jobs.json").read_text())
    builds = [j["id"] for j in plan["jobs"] if j["stage"] == "build"]
    assert builds == ["build-x86_64", "build-arm64", "build-powerpc", "build-s390"]
    plan_file = tmp_path / "plan" / "jobs.json"
    jobs = tmp_path / "jobs"
    for job in builds:
        ran = kseries("job", job, "--plan-file", plan_file, "--out", jobs / job)
        assert ran.returncode in (0, 250), (job, ran.stderr[-2000:])
    inputs = [arg for job in builds for arg in ("--from", str(jobs / job))]
    ran = kseries("job", "callers", "--plan-file", plan_file, "--out", jobs / "callers",
                  *inputs)
    assert ran.returncode in (0, 250), ran.stderr[-2000:]
    merged = tmp_path / "merged"
    ran = kseries("merge", *(jobs / j for j in [*builds, "callers"]), "--out", merged)
    assert ran.returncode in (0, 250), ran.stderr
    for stage in ("build", "callers"):
        assert checks_of(merged, stage) == checks_of(serial, stage), stage
    report = json.loads((merged / "report.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["tree", "apply", "build", "callers"]


GITLAB_CI_LOCAL = ROOT / "tools" / "node" / "node_modules" / ".bin" / "gitlab-ci-local"


def test_the_gitlab_pipeline_runs_under_gitlab_ci_local(real_tree: Tree, tmp_path: Path) -> None:
    """kseries plan --format gitlab-ci on a small series (checks and the x86_64 build), run
    by gitlab-ci-local's shell executor: the matrix jobs, then the merge, whose report
    holds both stages."""
    if not GITLAB_CI_LOCAL.is_file():
        pytest.fail(f"{GITLAB_CI_LOCAL} is missing: make setup installs it (npm ci)")
    work = tmp_path / "ci"
    work.mkdir()
    kseries_bin = Path(sys.executable).parent / "kseries"
    planned = subprocess.run(
        [str(kseries_bin), "plan", "--stage", "checks", "build", "--arch", "x86_64",
         "--mbox", str(FIXTURES / "small-series.mbx"), "--out", ".", "--plan-file",
         "jobs.json", "--format", "gitlab-ci", "--kseries-command", str(kseries_bin)],
        cwd=work, capture_output=True, text=True, check=False)
    assert planned.returncode == 0, planned.stderr
    (work / "kseries-pipeline.yml").rename(work / ".gitlab-ci.yml")
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=ci", "-c", "user.email=ci@example.org", "commit", "-qm",
                  "ci"]):
        subprocess.run(["git", *args], cwd=work, check=True)
    ran = subprocess.run([str(GITLAB_CI_LOCAL), "--shell-executor-no-image"], cwd=work,
                         capture_output=True, text=True, timeout=1800, check=False)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    report = json.loads((work / "out" / "report.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["tree", "apply", "checks", "build"]
    build = checks_of(work / "out", "build")
    assert "x86_64 config" in build and "coverage" in build
    assert (work / "out" / "export" / "junit.xml").is_file()
    assert "kseries-merge" in ran.stdout
