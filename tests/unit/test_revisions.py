"""export / import / diff on a small repo (fast); the real-tree variant: test_revisions_real."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.series.revisions import parse_range_diff, record_revision
from tests.conftest import ROOT, assert_one_line_error, git, run_cli

COVER = "Demo series for tests\n\nIt changes two lines of mm/a.c.\n"


@pytest.fixture
def workspace(small_repo: Path, tmp_path: Path) -> dict[str, Path]:
    return make_workspace(small_repo, tmp_path)


def make_workspace(small_repo: Path, tmp_path: Path) -> dict[str, Path]:
    """A user repo with branch 'work' (2 patches) and a private copy of series.toml."""
    git(small_repo, "checkout", "-q", "-b", "work")
    for old, new in (("int line3;\n", "int line3_renamed;\n"), ("int line15;\n", "long line15;\n")):
        source = small_repo / "mm" / "a.c"
        source.write_text(source.read_text().replace(old, new))
        git(small_repo, "commit", "-q", "-am", f"mm: {new.strip()}", "-m", "Why: tests.", "-s")
    git(small_repo, "checkout", "-q", "master")
    patches = tmp_path / "patches"
    patches.mkdir()
    series = patches / "series.toml"
    text = (ROOT / "patches" / "series.toml").read_text()
    text = text.replace('current = "v2"', 'current = "v1"')
    series.write_text(text.replace('[revisions.v2]\nmbox = "v2.mbx"',
                                   '[revisions.v1]\nmbox = "v1.mbx"'))
    (patches / "v1-cover.txt").write_text(COVER)
    return {"repo": small_repo, "series": series, "cache": tmp_path / "cache"}


def cli(ws: dict[str, Path], *args: str | Path) -> str:
    result = run_cli(*args, "--tree", ws["repo"], "--series", ws["series"],
                     "--cache-dir", ws["cache"])
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_export_is_complete_and_reproducible(workspace: dict[str, Path]) -> None:
    ws = workspace
    cli(ws, "export", "--branch", "work", "--as", "v1", "--base", "master", "--force")
    mbox = ws["series"].parent / "v1.mbx"
    first = mbox.read_bytes()
    text = first.decode()
    assert "Subject: [PATCH v1 0/2] Demo series for tests" in text
    assert "Subject: [PATCH v1 2/2] mm: long line15;" in text
    assert f"base-commit: {git(ws['repo'], 'rev-parse', 'master')}\nchange-id: 20200429-" in text
    assert "From 0000000000000000000000000000000000000000" in text
    assert " mm/a.c | 2 +-" in text  # diffstat per patch
    assert "In-Reply-To: <20200429-mhp-driver-managed-5a1e0d6c2f3b-v1-0-" in text
    cli(ws, "export", "--branch", "work", "--as", "v1", "--base", "master", "--force")
    assert mbox.read_bytes() == first


def test_export_refuses_to_overwrite(workspace: dict[str, Path]) -> None:
    ws = workspace
    cli(ws, "export", "--branch", "work", "--as", "v1", "--base", "master")
    result = run_cli("export", "--branch", "work", "--as", "v1", "--base", "master",
                     "--tree", ws["repo"], "--series", ws["series"], "--cache-dir", ws["cache"])
    assert_one_line_error(result, "exists; pass --force")


def test_round_trip_and_next_revision(workspace: dict[str, Path]) -> None:
    ws = workspace
    cli(ws, "export", "--branch", "work", "--as", "v1", "--base", "master")
    v1 = (ws["series"].parent / "v1.mbx").read_bytes()
    out = cli(ws, "import", "v1")
    edit = Path(out.split("worktree: ")[1].split()[0])
    branch = out.split("branch:   ")[1].split()[0]
    head = git(edit, "rev-parse", "HEAD")
    # Re-import gives the same commit ids (same dates), and re-export the same bytes.
    again = cli(ws, "import", "v1", "--force")
    assert git(Path(again.split("worktree: ")[1].split()[0]), "rev-parse", "HEAD") == head
    cli(ws, "export", "--branch", branch, "--as", "v1", "--base", "master", "--force")
    assert (ws["series"].parent / "v1.mbx").read_bytes() == v1
    # v2: patch 2 gets a different hunk, and a third patch is appended.
    git(edit, "reset", "-q", "--hard", "HEAD~1")
    source = edit / "mm" / "a.c"
    source.write_text(source.read_text().replace("int line15;\n", "unsigned long line15;\n"))
    git(edit, "commit", "-q", "-am", "mm: long line15;", "-m", "Why: tests.", "-s")
    source.write_text(source.read_text().replace("int line20;\n", "int line20; /* last */\n"))
    git(edit, "commit", "-q", "-am", "mm: comment the last line", "-m", "Why: tests.", "-s")
    (ws["series"].parent / "v2-cover.txt").write_text(COVER)
    cli(ws, "export", "--branch", branch, "--as", "v2", "--base", "master")
    toml = ws["series"].read_text()
    assert 'current = "v2"' in toml and "[revisions.v1]" in toml and "[revisions.v2]" in toml
    diff = cli(ws, "diff", "v1", "v2")
    assert "v1 -> v2: 1 changed, 1 new, 0 dropped, 1 unchanged" in diff
    lines = diff.splitlines()
    assert any(line.split()[:2] == ["unchanged", "1"] for line in lines)
    assert any(line.split()[:3] == ["changed", "2", "->"] for line in lines)
    assert any(line.split()[:4] == ["new", "-", "->", "3"] for line in lines)
    assert "\n      ++unsigned long line15;\n" in diff
    assert "\n      -+long line15;\n" in diff
    data = json.loads(cli(ws, "diff", "v1", "v2", "--json"))
    assert [(p["kind"], p["old"], p["new"]) for p in data["patches"]] == [
        ("unchanged", 1, 1), ("changed", 2, 2), ("new", None, 3)]
    assert data["old"] == "v1" and data["new"] == "v2" and data["same_base"] is True


def test_diff_of_unknown_revision(workspace: dict[str, Path]) -> None:
    ws = workspace
    result = run_cli("diff", "v1", "v7", "--tree", ws["repo"], "--series", ws["series"],
                     "--cache-dir", ws["cache"])
    assert_one_line_error(result, "unknown revision 'v7'")


def test_diff_of_revision_that_does_not_apply(workspace: dict[str, Path], tmp_path: Path) -> None:
    ws = workspace
    cli(ws, "export", "--branch", "work", "--as", "v1", "--base", "master")
    broken = tmp_path / "broken.mbx"
    broken.write_text((ws["series"].parent / "v1.mbx").read_text()
                      .replace(" int line14;\n", " int line14_gone;\n"))
    result = run_cli("diff", "v1", str(broken), "--tree", ws["repo"], "--series", ws["series"],
                     "--cache-dir", ws["cache"])
    assert_one_line_error(result, "does not apply")


def test_parse_range_diff_kinds() -> None:
    text = ("1:  aaaaaaa = 1:  bbbbbbb mm: one\n"
            "2:  ccccccc ! 2:  ddddddd mm: two\n"
            "    @@ mm/a.c\n"
            "    -old\n"
            "    +new\n"
            "3:  eeeeeee < -:  ------- mm: three\n"
            "-:  ------- > 3:  fffffff mm: four\n")
    changes = parse_range_diff(text)
    assert [(c.kind, c.old_index, c.new_index) for c in changes] == [
        ("unchanged", 1, 1), ("changed", 2, 2), ("dropped", 3, None), ("new", None, 3)]
    assert changes[1].interdiff == "@@ mm/a.c\n-old\n+new"


def test_record_revision_keeps_old_ones(tmp_path: Path) -> None:
    series = tmp_path / "series.toml"
    series.write_text((ROOT / "patches" / "series.toml").read_text())
    record_revision(series, "v3", "v3.mbx")
    text = series.read_text()
    assert '[revisions.v2]\nmbox = "v2.mbx"\n\n[revisions.v3]\nmbox = "v3.mbx"\n' in text
    assert 'current = "v3"' in text


def test_record_revision_keeps_comments_and_any_layout(tmp_path: Path) -> None:
    """No exact layout is needed: inline tables, comments, other keys all survive."""
    series = tmp_path / "series.toml"
    series.write_text('# top comment\n[series]\nname = "x"  # the name\ncurrent = "v1"\n\n'
                      '[revisions]\nv1 = { mbox = "v1.mbx" }  # first\n\n[base]\nversion = "1"\n')
    record_revision(series, "v2", "v2.mbx")
    text = series.read_text()
    assert "# top comment" in text and "# the name" in text and "# first" in text
    data = tomllib.loads(text)
    assert data["series"]["current"] == "v2"
    assert data["revisions"] == {"v1": {"mbox": "v1.mbx"}, "v2": {"mbox": "v2.mbx"}}
    assert data["base"] == {"version": "1"}


def test_record_revision_on_broken_toml_is_one_clear_error(tmp_path: Path) -> None:
    series = tmp_path / "series.toml"
    series.write_text("[series\n")
    with pytest.raises(KseriesError, match=r"is not valid TOML .*fix it and retry"):
        record_revision(series, "v2", "v2.mbx")
    series.write_text('[base]\nversion = "1"\n')
    with pytest.raises(KseriesError, match=r"has no \[series\] table"):
        record_revision(series, "v2", "v2.mbx")
