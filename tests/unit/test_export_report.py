"""`kseries report`: the console script writes the formats asked for; bad input is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from junitparser import JUnitXml
from kcidb_io import schema

from tests.conftest import assert_one_line_error, run_cli
from tests.export_data import GOLDEN, rich_report


def test_report_writes_each_format_asked_for(tmp_path: Path) -> None:
    laid = rich_report(tmp_path)
    out = tmp_path / "exported"
    result = run_cli("report", "--format", "kcidb", "--format", "junit", "--origin", "lab_1",
                     "--out", out, laid.report_dir / "report.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"wrote: {out / 'kcidb.json'}",
                                          f"wrote: {out / 'junit.xml'}"]
    data = json.loads((out / "kcidb.json").read_text())
    schema.LATEST.validate(data)
    assert {c["origin"] for c in data["checkouts"]} == {"lab_1"}
    assert len(list(JUnitXml.fromfile(str(out / "junit.xml")))) == 8


def test_report_defaults_to_out_report_json_and_its_export_dir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    shutil.copy(GOLDEN, tmp_path / "out" / "report.json")
    result = run_cli("report", "--format", "junit", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "export" / "junit.xml").is_file()


def test_bad_input_is_one_line_naming_the_remedy(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("report", "--format", "kcidb", tmp_path / "none.json"),
                          "does not exist", "kseries verify")
    broken = tmp_path / "broken.json"
    broken.write_text('{"stages": [')
    assert_one_line_error(run_cli("report", "--format", "kcidb", broken), "is not JSON")
    other = tmp_path / "other.json"
    other.write_text('{"name": "not a report"}')
    assert_one_line_error(run_cli("report", "--format", "kcidb", other),
                          "not a kseries report")
    assert_one_line_error(run_cli("report", "--format", "pdf", GOLDEN),
                          "unknown format 'pdf'", "kcidb, junit, patchwork, nipa, html")
    assert_one_line_error(run_cli("report", "--format", "kcidb", "--origin", "My-Lab", GOLDEN),
                          "--origin 'My-Lab'")
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert_one_line_error(run_cli("report", "--format", "junit", "--out", blocked / "x",
                                  GOLDEN), "cannot write", "--out")


def test_verify_checks_format_before_running(tmp_path: Path) -> None:
    result = run_cli("verify", "--format", "pdf", "--cache-dir", tmp_path / "cache",
                     "--out", tmp_path / "out")
    assert_one_line_error(result, "unknown format 'pdf'")
    assert not (tmp_path / "out" / "report.json").exists()
