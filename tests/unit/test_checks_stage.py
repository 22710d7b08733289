"""The checks stage end to end on a fixture tree (its scripts are stand-ins in the real
formats, see tests/checks_data.py): one check per patch per rule, a log for each, the
stage's status by the one rule, the generated notes section, bad --notes in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.core.context import Context, Options, make_context
from kseries.core.errors import KseriesError
from kseries.core.pipeline import RunState
from kseries.core.report import Stage
from kseries.stages.checks import notes
from kseries.stages.checks.stage import STAGE, ChecksOptions, checks_stage
from kseries.stages.registry import STAGES
from tests.checks_data import LIST, MAINTAINER, Applied, apply, kernel_repo, mailed, signed
from tests.conftest import assert_one_line_error, make_series, run_cli


def context(out: Path) -> Context:
    return make_context(Options(series_file=None, cache_dir=out / "cache", tree=None,
                                revision=None, mbox=None, out=out))


@pytest.fixture
def applied(tmp_path: Path) -> Applied:
    """Patch 1 is clean; patch 2 has no Signed-off-by and adds a kernel-doc warning to a
    header; patch 3 adds trailing whitespace (a checkpatch ERROR) and a Fixes: tag."""
    repo = kernel_repo(tmp_path)
    return apply(repo, [
        ("mm/a.c", "int line3;\n", "int line3_renamed;\n", signed("mm: rename line3")),
        ("include/a.h", "int a(void);\n", "int a(void);\n/* BADDOC(flags) */\n",
         "mm: document a()\n\nNo sign-off."),
        ("mm/a.c", "int line5;\n", "int line5; \n",
         signed("mm: touch line5", 'Fixes: 0123456789ab ("mm: upstream")')),
    ])


def run_stage(applied: Applied, out: Path, cc: tuple[str, ...] = (MAINTAINER, LIST),
              options: ChecksOptions | None = None) -> Stage:
    state = RunState(context(out), applied=applied.result(mailed(applied, cover_cc=cc)))
    return checks_stage(state, options or ChecksOptions())


def test_one_check_per_patch_per_rule_with_a_log_each(applied: Applied, tmp_path: Path) -> None:
    stage = run_stage(applied, tmp_path / "out")
    got = {(c.rule, c.step): c.status for c in stage.checks}
    assert got == {
        ("checkpatch", "patch 1"): "pass", ("signoff", "patch 1"): "pass",
        ("fixes", "patch 1"): "pass", ("maintainers", "patch 1"): "pass",
        ("checkpatch", "patch 2"): "fail", ("signoff", "patch 2"): "fail",
        ("fixes", "patch 2"): "pass", ("maintainers", "patch 2"): "pass",
        ("checkpatch", "patch 3"): "fail", ("signoff", "patch 3"): "pass",
        ("fixes", "patch 3"): "warn", ("maintainers", "patch 3"): "pass",
        ("kernel-doc", "include/a.h"): "warn", ("kernel-doc", "mm/a.c"): "pass",
        ("base-commit", "series"): "pass",
    }
    logs = tmp_path / "out" / "logs" / "checks"
    for check in stage.checks:
        assert check.log is not None and Path(check.log).parent == logs, check
        assert Path(check.log).read_text(), check
    assert stage.status == "fail"
    assert stage.summary.startswith("checkpatch patch 2: 1 errors, 0 warnings, 0 checks; "
                                    "first: ERROR: Missing Signed-off-by: line(s); ")
    assert "signoff 1 fail/2 pass" in stage.summary


def test_findings_say_what_and_where(applied: Applied, tmp_path: Path) -> None:
    by = {(c.rule, c.step): c for c in run_stage(applied, tmp_path / "out").checks}
    doc = by[("kernel-doc", "include/a.h")]
    assert doc.summary == ("include/a.h: 1 new kernel-doc warnings (0 at the base); first: "
                           "warning: Function parameter 'flags' not described")
    # mm/a.c's old warning is there on both sides (on another line at the head): not new.
    assert by[("kernel-doc", "mm/a.c")].data["base"] == 1
    assert by[("checkpatch", "patch 3")].data["findings"][0] == (
        "ERROR: trailing whitespace (mm/a.c:3)")
    assert "cannot tell" in by[("fixes", "patch 3")].summary
    assert by[("checkpatch", "patch 1")].reproducer == (
        f"cd {applied.repo} && perl scripts/checkpatch.pl --strict --color=never - < "
        f"{tmp_path / 'out' / 'logs' / 'checks' / 'patch-1.patch'}")


def test_a_missing_maintainer_warns_naming_who(applied: Applied, tmp_path: Path) -> None:
    stage = run_stage(applied, tmp_path / "out", cc=(LIST,))
    check = next(c for c in stage.checks if c.rule == "maintainers")
    assert check.status == "warn"
    assert check.summary == f"1 of 2 named by get_maintainer not in To/Cc: {MAINTAINER}"
    nobody = run_stage(applied, tmp_path / "out2", cc=())
    assert {c.status for c in nobody.checks if c.rule == "maintainers"} == {"warn"}


def test_no_mailed_series_is_reasoned_not_a_crash(applied: Applied, tmp_path: Path) -> None:
    state = RunState(context(tmp_path / "out"), applied=applied.result(None))
    stage = checks_stage(state, ChecksOptions())
    by = {(c.rule, c.step): c for c in stage.checks}
    assert by[("base-commit", "series")].status == "skip"
    assert "not known" in by[("maintainers", "patch 1")].summary


def test_notes_section_is_rewritten_between_the_markers(applied: Applied,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "NOTES.md"
    path.write_text(f"# Notes\n\nkept\n\n{notes.BEGIN}\nold table\n{notes.END}\n\nalso kept\n")
    run_stage(applied, tmp_path / "out", options=ChecksOptions(path))
    text = path.read_text()
    assert text.startswith("# Notes\n\nkept\n\n") and text.endswith("\n\nalso kept\n")
    assert "old table" not in text
    assert (f"| 1 | mm: rename line3 | {MAINTAINER} (maintainer:MEMORY HOT(UN)PLUG)<br>{LIST} "
            "(open list:MEMORY MANAGEMENT) | 0 errors, 0 warnings, 0 checks | pass, pass, pass |"
            ) in text
    assert "- signoff patch 2: fail: no Signed-off-by: at all" in text
    again = text
    run_stage(applied, tmp_path / "out", options=ChecksOptions(path))
    assert path.read_text() == again  # the same series gives the same bytes


def test_notes_without_markers_fail_before_the_work(applied: Applied, tmp_path: Path) -> None:
    path = tmp_path / "NOTES.md"
    path.write_text("# Notes\n")
    with pytest.raises(KseriesError, match="has no '<!-- kseries checks: begin -->'"):
        run_stage(applied, tmp_path / "out", options=ChecksOptions(path))
    assert not (tmp_path / "out" / "logs" / "checks").exists()


def test_bad_notes_on_the_command_line_is_one_line(small_repo: Path, tmp_path: Path) -> None:
    mbox = make_series(small_repo, [("mm/a.c", "int line3;\n", "int l3;\n")],
                       tmp_path / "s.mbx")
    result = run_cli("checks", "--tree", small_repo, "--mbox", mbox, "--cache-dir",
                     tmp_path / "cache", "--out", tmp_path / "out", "--notes",
                     tmp_path / "missing.md")
    assert_one_line_error(result, "checks:", "missing.md: cannot read it")


def test_checks_run_right_after_apply_and_need_it() -> None:
    assert [s.name for s in STAGES][:4] == ["tree", "apply", "checks", "build"]
    assert STAGE.needs(ChecksOptions()) == ("apply",)
    assert set(STAGE.tools(ChecksOptions())) == {"git", "perl"}
    assert STAGE.to_args(ChecksOptions(Path("/n.md"))) == ["--notes", "/n.md"]


def test_notes_say_once_that_recipients_are_not_recorded(applied: Applied,
                                                          tmp_path: Path) -> None:
    stage = run_stage(applied, tmp_path / "out", cc=())
    lines = [line for line in notes.section(stage) if line.startswith("- maintainers")]
    assert lines == ["- maintainers (patch 1, patch 2, patch 3): warn: To/Cc not confirmed: the "
                     "mails carry no To/Cc (neither the patch nor the cover letter)"]
