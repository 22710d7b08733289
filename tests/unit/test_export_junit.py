"""JUnit export, read back with junitparser: suites per stage, cases per check, outcomes."""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from kseries.export import junit
from tests.export_data import Laid, golden_report, rich_report


def export(laid: Laid, tmp_path: Path) -> JUnitXml:
    [path] = junit.write(laid.report, tmp_path / "export", laid.settings())
    assert path.name == "junit.xml"
    return JUnitXml.fromfile(str(path))


def suites(xml: JUnitXml) -> dict[str, TestSuite]:
    return {suite.name: suite for suite in xml}


def case(suite: TestSuite, name: str) -> TestCase:
    [found] = [c for c in suite if c.name == name]
    return found


def test_golden_report_reads_back(tmp_path: Path) -> None:
    xml = export(golden_report(), tmp_path)
    found = suites(xml)
    assert list(found) == ["apply", "build"]
    warned = case(found["build"], "x86_64 head")
    assert warned.classname == "build.x86_64" and warned.is_passed
    assert warned.system_out.startswith("WARNING: 1 new warning")
    assert case(found["apply"], "patch 1").classname == "apply"


def test_each_outcome_and_its_message(tmp_path: Path) -> None:
    laid = rich_report(tmp_path)
    found = suites(export(laid, tmp_path))
    assert list(found) == ["tree", "apply", "checks", "build", "callers", "kunit", "vmtest",
                           "revisions"]
    failed = case(found["checks"], "maintainers patch 3")
    [result] = failed.result
    assert isinstance(result, Failure) and result.type == "maintainers"
    assert result.message == ("get_maintainer names 1 not in To/Cc: Oscar Salvador "
                              "<osalvador@suse.de>")
    assert "log: logs/checks/maintainers-patch-3.log" in failed.system_out
    assert "reproduce: cd " in failed.system_out
    skipped = case(found["kunit"], "x86_64: memory_hotplug_driver_managed."
                                   "kdump_includes_driver_managed")
    assert skipped.classname == "kunit.x86_64" and skipped.is_skipped
    assert isinstance(skipped.result[0], Skipped)
    assert skipped.result[0].message == "SKIP: CONFIG_CRASH_DUMP is not set"
    [errored] = list(found["revisions"])
    assert isinstance(errored.result[0], Error)
    assert errored.result[0].message == "git range-diff v2...v3 timed out after 300 s"
    warned = case(found["vmtest"], "x86_64.shrink.dmesg_clean")
    assert warned.is_passed and warned.system_out.startswith("WARNING: skipped: unplug")


def test_counts_and_times_add_up(tmp_path: Path) -> None:
    laid = rich_report(tmp_path)
    xml = export(laid, tmp_path)
    found = suites(xml)
    checks = laid.report["stages"][2]["checks"]
    assert found["checks"].tests == len(checks) == 15
    assert found["checks"].failures == 1 and found["checks"].skipped == 1
    assert found["build"].time == 402.7
    assert case(found["build"], "s390 patch-2").time == 22.0
    assert found["kunit"].failures == 1 and found["kunit"].skipped == 2
    assert xml.errors == 1 and xml.tests == sum(s.tests for s in xml)
