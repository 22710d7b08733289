"""report.py: the one aggregation rule, exit codes, the JSON shape (golden file), reading back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kseries.core.report import (
    SCHEMA_VERSION,
    Check,
    Report,
    Stage,
    Status,
    exit_code,
    load_report,
    stage_from_checks,
    worst,
)
from tests.conftest import FIXTURES

GOLDEN = FIXTURES / "report-golden.json"


@pytest.mark.parametrize(("statuses", "expected"), [
    ([], "skip"), (["skip"], "skip"), (["pass", "skip"], "pass"), (["skip", "pass"], "pass"),
    (["pass", "warn", "skip"], "warn"), (["warn", "fail"], "fail"), (["fail", "error"], "error"),
    (["error", "skip"], "error"),
])
def test_one_aggregation_rule(statuses: list[Status], expected: Status) -> None:
    assert worst(statuses) == expected


def test_skips_never_hide_passes_in_a_stage() -> None:
    """The callers stage with --no-spatch: every call passed, the second opinion skipped."""
    checks = [Check(name="call a", status="pass", summary="converted"),
              Check(name="call b", status="pass", summary="converted"),
              Check(name="second opinion (spatch)", status="skip", summary="skipped: --no-spatch")]
    stage = stage_from_checks("callers", checks, 1.0)
    assert stage.status == "pass"
    assert stage.summary == "2 of 3 checks passed"


def test_a_failing_check_names_the_stage_summary() -> None:
    checks = [Check(name="call a", status="pass", summary="converted"),
              Check(name="call b", status="fail", summary="b: no flag")]
    assert stage_from_checks("callers", checks, 1.0).summary == "b: no flag"


@pytest.mark.parametrize(("status", "code"), [("pass", 0), ("skip", 0), ("warn", 250),
                                              ("fail", 1), ("error", 3)])
def test_exit_codes(status: Status, code: int) -> None:
    assert exit_code(status) == code


def sample_report() -> Report:
    apply = Stage(name="apply", status="pass", summary="2 patches applied", duration_s=1.5,
                  checks=(Check(name="patch 1", status="pass", summary="abc mm: one",
                                step="patch 1"),),
                  data={"base": "b" * 40, "head": "h" * 40})
    build = Stage(name="build", status="warn", summary="1 new warning", duration_s=20.0,
                  checks=(Check(name="x86_64 head", status="warn", summary="1 new warning",
                                arch="x86_64", step="head",
                         rule="new-warning", log="/tmp/x/build.log"),), log="/tmp/x")
    report = Report("mhp-driver-managed", "v2", "default", [apply, build],
                    started="2026-01-01T00:00:00Z", tools={"git": "git version 2.39.5"})
    report.ended = "2026-01-01T00:01:00Z"
    return report


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs from machine to machine: durations, paths, version."""
    data = json.loads(json.dumps(data))
    data["kseries_version"] = "<version>"
    for stage in data["stages"]:
        stage["duration_s"] = 0.0
        stage["log"] = stage["log"] and "<log>"
        for check in stage["checks"]:
            check["duration_s"] = 0.0
            check["log"] = check["log"] and "<log>"
    return data


def test_report_json_matches_the_golden_file() -> None:
    assert redacted(sample_report().to_json()) == json.loads(GOLDEN.read_text())


def test_report_reads_back_and_merges(tmp_path: Path) -> None:
    report = sample_report()
    report.write(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp file left
    again = load_report(tmp_path)
    assert again is not None and again.stages == report.stages
    again.add(Stage(name="build", status="pass", summary="rebuilt", duration_s=1.0))
    assert [(s.name, s.status) for s in again.stages] == [("apply", "pass"), ("build", "pass")]


def test_an_old_or_broken_report_is_not_merged(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps({"series": "s", "stages": []}))
    assert load_report(tmp_path) is None
    (tmp_path / "report.json").write_text("{not json")
    assert load_report(tmp_path) is None
    data = sample_report().to_json()
    data["stages"][0]["status"] = "great"
    (tmp_path / "report.json").write_text(json.dumps(data))
    assert load_report(tmp_path) is None
    assert data["schema_version"] == SCHEMA_VERSION
