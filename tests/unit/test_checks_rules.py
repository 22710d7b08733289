"""The checks stage's git-side rules on small fixture repos: signoff, fixes, base-commit, and
the adapter to the series as mailed. Each rule has a mutant that shows it bites."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.series.mbox import Series
from kseries.stages.checks import basecommit, fixes, signoff
from kseries.stages.checks.inputs import recipients
from tests.checks_data import AUTHOR, Applied, apply, kernel_repo, mailed, signed
from tests.conftest import git


def one_patch(tmp_path: Path, message: str, history: bool = False) -> Applied:
    repo = kernel_repo(tmp_path, history)
    return apply(repo, [("mm/a.c", "int line3;\n", "int line3_renamed;\n", message)])


# --- signoff -------------------------------------------------------------------------------


@pytest.mark.parametrize(("found", "status"), [
    ([("Test Author", "test@example.org")], "pass"),
    ([("Someone", "x@example.org"), ("test author", "TEST@Example.org")], "pass"),
    ([("T. Author", "test@example.org")], "warn"),
    ([("Someone Else", "else@example.org")], "fail"),
    ([], "fail"),
])
def test_signoff_matches_the_author_by_address(found: list[tuple[str, str]],
                                               status: str) -> None:
    assert signoff.judge(("Test Author", "test@example.org"), found)[0] == status


def test_signoffs_are_read_from_the_message() -> None:
    message = ('x\n\nSigned-off-by: "Q. Uoted" <q@example.org>\nsigned-off-by: Low <l@e.org>\n'
               "Reviewed-by: Not Me <r@example.org>\n")
    assert signoff.signoffs(message) == [("Q. Uoted", "q@example.org"), ("Low", "l@e.org")]


def test_signoff_passes_a_signed_commit_and_fails_its_mutant(tmp_path: Path) -> None:
    good = one_patch(tmp_path / "good", signed("mm: signed"))
    check = signoff.check(good.job(tmp_path / "logs"), good.patches[0])
    assert (check.status, check.step, check.rule) == ("pass", "patch 1", "signoff")
    assert Path(str(check.log)).read_text().startswith(f"commit {good.patches[0].commit}")
    mutant = one_patch(tmp_path / "mutant", "mm: not signed\n\nBecause.")
    check = signoff.check(mutant.job(tmp_path / "logs2"), mutant.patches[0])
    assert check.status == "fail"
    assert check.summary == f"no Signed-off-by: at all; the author {AUTHOR} must sign off"


# --- fixes ---------------------------------------------------------------------------------


SHA = "0123456789abcdef0123"


@pytest.mark.parametrize(("line", "subject", "no_history", "status", "why"), [
    (f'Fixes: {SHA} ("mm: x")', "mm: x", "", "pass", "is in the tree"),
    (f'Fixes: {SHA} ("mm: x")', "mm: y", "", "fail", 'is "mm: y", not "mm: x"'),
    (f'Fixes: {SHA} ("mm: x")', None, "", "fail", "not a commit of the tree"),
    (f'Fixes: {SHA} ("mm: x")', None, "no history", "warn", "cannot tell: no history"),
    ('Fixes: 0123456 ("mm: x")', None, "", "fail", "malformed"),
    (f"Fixes: {SHA} mm: x", None, "", "fail", "malformed"),
    (f'Fixes: {SHA} ("mm: a subject wrapped', None, "", "fail", "malformed"),
    (f'fixes: {SHA} ("mm: x")', None, "", "fail", "malformed"),
    (f'Fixes: {SHA.upper()} ("mm: x")', None, "", "fail", "malformed"),
])
def test_fixes_verdict(line: str, subject: str | None, no_history: str, status: str,
                       why: str) -> None:
    verdict = fixes.judge(line, subject, no_history)
    assert verdict.status == status and why in verdict.why, verdict


def test_fixes_lines_are_found_whatever_the_key_case() -> None:
    message = 'x\n\nFixes: 123 ("a")\n fixes : abc\nNot Fixes: here\n'
    assert fixes.fixes_lines(message) == ['Fixes: 123 ("a")', " fixes : abc"]


def test_no_fixes_tag_passes(tmp_path: Path) -> None:
    applied = one_patch(tmp_path, signed("mm: plain"))
    check = fixes.check(applied.job(tmp_path / "logs"), applied.patches[0], "")
    assert (check.status, check.summary) == ("pass", "no Fixes: tag")


def test_fixes_naming_a_known_commit_passes_and_its_mutants_fail(tmp_path: Path) -> None:
    repo = kernel_repo(tmp_path, history=True)
    base = git(repo, "rev-parse", "HEAD")
    good = f'Fixes: {base[:12]} ("mm: base of the tree")'
    wrapped = f'Fixes: {base[:12]} ("mm: base of\nthe tree")'
    applied = apply(repo, [("mm/a.c", "int line3;\n", "int l3;\n", signed("mm: a", good)),
                           ("mm/a.c", "int line4;\n", "int l4;\n", signed("mm: b", wrapped)),
                           ("mm/a.c", "int line5;\n", "int l5;\n",
                            signed("mm: c", 'Fixes: 0123456789ab ("mm: gone")'))])
    job = applied.job(tmp_path / "logs")
    no_history = fixes.history(repo, base)
    assert no_history == ""
    statuses = [fixes.check(job, p, no_history).status for p in applied.patches]
    assert statuses == ["pass", "fail", "fail"]


def test_unknown_fixes_commit_in_a_one_commit_tree_is_a_warning(tmp_path: Path) -> None:
    applied = one_patch(tmp_path, signed("mm: a", 'Fixes: 0123456789ab ("mm: upstream")'))
    no_history = fixes.history(applied.repo, applied.base)
    assert no_history == "the tree has no history (a one-commit import)"
    check = fixes.check(applied.job(tmp_path / "logs"), applied.patches[0], no_history)
    assert check.status == "warn" and "cannot tell" in check.summary


# --- base-commit and the series as mailed --------------------------------------------------


def test_base_commit_present_absent_unknown(tmp_path: Path) -> None:
    applied = one_patch(tmp_path, signed("mm: a"))
    job = applied.job(tmp_path / "logs", mailed(applied))
    check = basecommit.check(job)
    assert (check.status, check.name, check.step) == ("pass", "base-commit", "series")
    assert "the commit it was applied on" in check.summary
    no_base = basecommit.check(applied.job(tmp_path / "l2", mailed(applied, base_commit=False)))
    assert no_base.status == "warn" and "no base-commit:" in no_base.summary
    assert basecommit.check(applied.job(tmp_path / "l3", None)).status == "skip"


def test_recipients_come_from_patch_and_cover(tmp_path: Path) -> None:
    applied = one_patch(tmp_path, signed("mm: a"))
    series = mailed(applied, to=("A <A@Example.org>",), cover_cc=("list@example.org",))
    sent = recipients(series, 1)
    assert sent.addresses == {"a@example.org", "list@example.org", "test@example.org"}
    assert not sent.unknown
    assert "not known" in recipients(None, 1).unknown
    assert "no To/Cc" in recipients(mailed(applied), 1).unknown
    assert recipients(Series(tmp_path, None, None, ()), 1).unknown
