"""kseries kunit on the real 6.12 tree with the current revision (v3), whose last patch carries
the suite: on x86_64 at the base, at every patch and at the head (--every-commit).

The base and the patches before the suite's own get the suite's diff plus the shim
(kernel-overlay/base); the fixture's runs share <cache>/build/kunit-x86_64 with
the other KUnit users, so only files that differ between the commits are recompiled (the
base and patch 2, which changes include/linux/memory_hotplug.h, are full compiles cold).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kseries.cli import run_stage_command
from kseries.core.context import Options, make_context
from kseries.kernel.tree import Tree
from kseries.series.config import load_series
from kseries.stages.kunit import stage as kunit
from kseries.stages.kunit.results import case_names, parse_json
from kseries.stages.kunit.suite import SUITE_SOURCE
from tests.conftest import git

pytestmark = pytest.mark.realtree

SUITE = "memory_hotplug_driver_managed"
# Cases that cannot run on x86_64, and the reason they give.
X86_SKIPS = {"dm_memblock_flag": "CONFIG_ARCH_KEEP_MEMBLOCK is not set",
             "dm_powerpc_kexec_file_hole_search": "no powerpc kexec_file hole search here"}
# What the base gets wrong on x86_64 and the patch of v3 that fixes it (patch 1 is the
# powerpc fix, patch 3 virtio-mem, patch 4 the suite itself: none changes a case here).
FIXED_BY = {"2": ["dm_flag_rejected_by_add_memory", "resource_inconsistent_rejected"]}


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stage: dict[str, Any]
    out: Path

    def runs(self) -> list[dict[str, Any]]:
        return list(self.stage["data"]["runs"])

    def check(self, name: str) -> dict[str, Any]:
        [found] = [c for c in self.stage["checks"] if c["name"] == name]
        return dict(found)


@pytest.fixture(scope="module")
def outcome(real_tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    assert load_series().current == "v3"
    out = tmp_path_factory.mktemp("kunit-v3-out")
    ctx = make_context(Options(series_file=None, cache_dir=None, tree=None, revision=None,
                               mbox=None, out=Path(os.path.relpath(out))))
    options = kunit.KunitOptions(("x86_64",), ("x86_64",), every_commit=True)
    code = run_stage_command(ctx, kunit.STAGE, options)
    [stage] = [s for s in json.loads((out / "report.json").read_text())["stages"]
               if s["name"] == "kunit"]
    return Outcome(code, stage, out)


def test_the_suite_comes_from_the_series_and_every_case_passes_at_the_head(
        outcome: Outcome) -> None:
    [head] = [r for r in outcome.runs() if r["variant"] == "series"]
    worktree = Path(outcome.stage["data"]["worktree"])
    assert git(worktree, "ls-files", SUITE_SOURCE) == SUITE_SOURCE
    names = case_names((worktree / SUITE_SOURCE).read_text())
    cases = {c["name"]: c for c in head["cases"] if c["suite"] == SUITE}
    assert list(cases) == names and len(names) == 14
    for name, case in cases.items():
        if name in X86_SKIPS:
            assert case["status"] == "skip" and X86_SKIPS[name] in case["reason"], case
        else:
            assert case["status"] == "pass", case
    assert outcome.exit_code == 0 and outcome.stage["status"] == "pass"


def test_it_runs_at_the_base_and_at_every_patch_in_order(outcome: Outcome) -> None:
    assert [(r["variant"], r["patch"]) for r in outcome.runs()] == [
        ("base", 0), ("commit", 1), ("commit", 2), ("commit", 3), ("series", 4)]
    # patch 2 makes the suite pass on x86_64; patch 1 changes only arch/powerpc/, so its
    # x86_64 kernel is the base's and it is not run again
    assert [r["outcome"] for r in outcome.runs()] == [
        "failed", "same-as-before", "passed", "passed", "passed"]
    assert outcome.runs()[1]["summary"].startswith(
        "changes only arch/powerpc/: nothing of it is built for x86_64")
    assert outcome.check("x86_64: cases per patch")["data"]["same_as_before"] == [
        "x86_64 at patch 1"]


def test_the_per_patch_check_names_the_patch_that_fixes_each_case(outcome: Outcome) -> None:
    check = outcome.check("x86_64: cases per patch")
    assert check["status"] == "pass", check["summary"]
    fixed = {n: cases for n, cases in check["data"]["fixed_by_patch"].items() if cases}
    assert fixed == FIXED_BY
    bites = outcome.check("x86_64 base: suite bites")
    assert bites["status"] == "pass"
    assert bites["summary"] == ("without the series 2 of 14 cases fail: "
                                "dm_flag_rejected_by_add_memory, resource_inconsistent_rejected")


def test_report_holds_a_check_per_case_and_the_logs(outcome: Outcome) -> None:
    names = {c["name"] for c in outcome.stage["checks"]}
    assert f"x86_64: {SUITE}.dm_named_resource" in names and "x86_64: cases per patch" in names
    logs = outcome.out / "kunit"
    assert (logs / "series-x86_64.json").is_file() and (logs / "base-x86_64.log").is_file()
    assert "Linux version" in (logs / "series-x86_64.console.log").read_text()


def test_worktree_is_back_at_the_head_without_the_laid_suite(outcome: Outcome) -> None:
    worktree = Path(outcome.stage["data"]["worktree"])
    assert git(worktree, "rev-parse", "HEAD") == outcome.stage["data"]["head"]
    assert git(worktree, "status", "--porcelain") == ""


def test_kunit_py_parses_the_console_log_as_we_do(outcome: Outcome, real_tree: Tree,
                                                  tmp_path: Path) -> None:
    """The tree's own kunit.py parser gives the same status per case as our report, at the
    base (failures) and at the head (passes and skips)."""
    for run in (r for r in outcome.runs() if r["variant"] in ("base", "series")):
        parsed = tmp_path / f"{run['variant']}.json"
        subprocess.run([sys.executable, str(real_tree.path / kunit.KUNIT_PY), "parse",
                        f"--json={parsed}", run["console_log"]], capture_output=True,
                       check=False)
        theirs = {(s, n): st for s, n, st in parse_json(parsed.read_text())}
        ours = {(c["suite"], c["name"]): c["status"] for c in run["cases"]}
        assert theirs == ours, run["variant"]
