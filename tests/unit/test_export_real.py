"""Every exporter on a real run's report: `kseries checks` (tree, apply with b4, checks) on a
small repository, then `kseries report` with each format."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from junitparser import JUnitXml
from kcidb_io import schema

from tests.conftest import git, make_series, run_cli

# A checkpatch that reads the patch on stdin and finds nothing: enough for the checks stage
# to run the rule and keep each patch file beside its logs (what KCIDB's patchset hash is of).
CHECKPATCH = "while (<STDIN>) {}\nprint \"total: 0 errors, 0 warnings, 3 lines checked\\n\";\n"


def real_run(repo: Path, tmp_path: Path) -> tuple[Path, str]:
    (repo / "scripts").mkdir()
    (repo / "scripts" / "checkpatch.pl").write_text(CHECKPATCH)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "scripts")
    mbox = make_series(repo, [("mm/a.c", "int line3;", "int line3_renamed;"),
                              ("mm/a.c", "int line15;", "long line15;")], tmp_path / "s.mbx")
    out = tmp_path / "out"
    result = run_cli("checks", "--tree", repo, "--mbox", mbox, "--cache-dir",
                     tmp_path / "cache", "--out", out)
    assert "Traceback" not in result.stderr, result.stderr
    assert (out / "report.json").is_file(), result.stderr
    return out, mbox.read_text()


def test_each_format_on_a_real_report(small_repo: Path, tmp_path: Path) -> None:
    out, mbox = real_run(small_repo, tmp_path)
    base = git(small_repo, "rev-parse", "HEAD")
    ids = re.findall(r"^Message-ID: <([^>]+)>", mbox, re.MULTILINE | re.IGNORECASE)
    assert len(ids) == 3  # the cover letter and two patches
    result = run_cli("report", "--format", "kcidb", "--format", "junit", "--format",
                     "patchwork", "--format", "nipa", out / "report.json")
    assert result.returncode == 0, result.stderr
    export = out / "export"

    data = json.loads((export / "kcidb.json").read_text())
    schema.LATEST.validate(data)
    [checkout] = data["checkouts"]
    assert checkout["git_commit_hash"] == base and checkout["message_id"] == ids[0]
    assert checkout["misc"]["message_ids"] == ids[1:]
    files = [out / "logs" / "checks" / f"patch-{i}.patch" for i in (1, 2)]
    digests = "".join(hashlib.sha256(f.read_bytes()).hexdigest() + "\n" for f in files)
    assert checkout["patchset_hash"] == hashlib.sha256(digests.encode()).hexdigest()
    assert [f["url"] for f in checkout["patchset_files"]] == [f.as_uri() for f in files]
    paths = {t["path"] for t in data["tests"]}
    assert {"tree", "apply.patch_1", "checks.patch2.signoff", "checks.base-commit"} <= paths

    xml = JUnitXml.fromfile(str(export / "junit.xml"))
    assert [s.name for s in xml] == ["tree", "apply", "checks"]

    index = json.loads((export / "patchwork" / "index.json").read_text())
    assert [p["message_id"] for p in index["patches"]] == ids[1:]
    assert index["patches"][1]["states"]["kseries-signoff"] == "success"

    series = next((export / "nipa").iterdir())
    assert (series / "2" / "signoff" / "retcode").read_text() == "0"
    assert (series / "base-commit" / "retcode").read_text() == "0"


def test_verify_writes_the_formats_at_the_end(small_repo: Path, tmp_path: Path) -> None:
    mbox = make_series(small_repo, [("mm/a.c", "int line3;", "int line3_renamed;")],
                       tmp_path / "one.mbx")
    out = tmp_path / "out"
    result = run_cli("verify", "--stage", "checks", "--tree", small_repo, "--mbox", mbox,
                     "--cache-dir", tmp_path / "cache", "--out", out, "--format", "junit",
                     "--format", "kcidb", "--origin", "my_lab")
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2:] == [f"wrote: {out / 'export' / 'junit.xml'}",
                          f"wrote: {out / 'export' / 'kcidb.json'}"]
    data = json.loads((out / "export" / "kcidb.json").read_text())
    schema.LATEST.validate(data)
    assert data["checkouts"][0]["id"].startswith("my_lab:")
    assert [s.name for s in JUnitXml.fromfile(str(out / "export" / "junit.xml"))] == [
        "tree", "apply", "checks"]


def test_json_on_stdout_and_the_human_lines_on_stderr(small_repo: Path, tmp_path: Path) -> None:
    """--json: stdout is the report (what report.json holds), nothing else; a person still
    reads the summary, on stderr."""
    out, _ = real_run(small_repo, tmp_path)
    mbox = tmp_path / "s.mbx"
    result = run_cli("checks", "--tree", small_repo, "--mbox", mbox, "--cache-dir",
                     tmp_path / "cache", "--out", out, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    assert data == json.loads((out / "report.json").read_text())
    assert [s["name"] for s in data["stages"]] == ["tree", "apply", "checks"]
    assert f"report: {out / 'report.json'}" in result.stderr
    shown = run_cli("tree", "--show", "--tree", small_repo, "--json")
    assert shown.returncode == 0, shown.stderr
    tree = json.loads(shown.stdout)
    assert tree["path"] == str(small_repo) and tree["base_commit"] == git(
        small_repo, "rev-parse", "HEAD")
