"""NIPA export: the series/patch/test directories and files NIPA's uploader reads."""

from __future__ import annotations

from pathlib import Path

from kseries.export import nipa
from tests.export_data import Laid, golden_report, rich_report


def export(laid: Laid, tmp_path: Path) -> Path:
    written = nipa.write(laid.report, tmp_path / "export", laid.settings())
    series = tmp_path / "export" / "nipa" / f"mhp-driver-managed-{laid.report['revision']}"
    assert all(series in p.parents for p in written)
    return series


def read(test_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in test_dir.iterdir()}


def test_layout_per_series_and_per_patch(tmp_path: Path) -> None:
    series = export(rich_report(tmp_path), tmp_path)
    assert (series / ".tester_done").is_file()
    patch_dirs = sorted(p.name for p in series.iterdir() if p.is_dir() and p.name.isdigit())
    assert patch_dirs == ["1", "2", "3"]
    assert sorted(p.name for p in (series / "2").iterdir()) == [
        "apply", "apply_trailer_2", "build_arm64", "build_s390", "build_x86_64", "checkpatch",
        "fixes", "maintainers", "signoff"]
    series_tests = sorted(p.name for p in series.iterdir()
                          if p.is_dir() and not p.name.isdigit())
    assert series_tests == ["apply", "base-commit", "build", "callers", "kernel-doc", "kunit",
                            "revisions", "tree", "vmtest"]


def test_files_follow_nipa_conventions(tmp_path: Path) -> None:
    series = export(rich_report(tmp_path), tmp_path)
    failed = read(series / "2" / "build_s390")
    assert failed["retcode"] == "1"
    assert failed["desc"] == ("patch 2/3 'virtio-mem: add memory as driver-managed with "
                              "MHP_DRIVER_MANAGED': 1 new warning(s) on s390\n")
    assert failed["summary"].startswith("==========\nbuild_s390 - FAILED\n\nFAIL  s390 patch-2")
    assert "log: build/s390/patch-2.log" in failed["stderr"]
    warned = read(series / "2" / "checkpatch")
    assert warned["retcode"] == "250" and "stderr" not in warned
    assert warned["summary"] == "==========\ncheckpatch - WARNING\n"
    passed = read(series / "1" / "signoff")
    assert passed["retcode"] == "0" and passed["summary"] == "==========\nsignoff - OKAY\n"
    errored = read(series / "revisions")
    assert errored["retcode"] == "3"
    assert errored["desc"] == "error: git range-diff v2...v3 timed out after 300 s\n"
    kunit = read(series / "kunit")
    assert kunit["retcode"] == "1" and kunit["desc"].startswith("x86_64 base: does not build")
    assert kunit["stdout"].count("\n") > kunit["stderr"].count("\n") > 0


def test_skipped_tests_are_listed_not_written(tmp_path: Path) -> None:
    laid = golden_report()
    laid.report["stages"][1]["checks"][0]["status"] = "skip"
    series = export(laid, tmp_path)
    assert not (series / "build").exists()
    assert (series / "skipped.txt").read_text() == "series: build: 1 new warning\n"
    assert read(series / "1" / "apply")["retcode"] == "0"
    laid.report["interrupted"] = True
    again = export(laid, tmp_path / "again")
    assert not (again / ".tester_done").exists()  # NIPA's uploader waits for it
