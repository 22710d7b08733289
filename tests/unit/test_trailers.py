"""import enrolls with b4 prep; kseries trailers runs b4 trailers -u (small repo, fast; the
real-tree variant: tests/real/test_trailers_real.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.series.prep import change_id_of_revision, cover_of_revision
from kseries.series.trailers import Added, added_trailers
from tests.conftest import ROOT, CliResult, assert_one_line_error, git, run_cli, snapshot
from tests.trailer_replies import (
    ACKER,
    REVIEWER,
    b4,
    b4_send,
    patch_ids,
    posted,
    review_replies,
    subject_of,
)
from tests.unit.test_revisions import make_workspace

BRANCH = "mhp-driver-managed/v1-wip"
CHANGE_ID = "20200429-mhp-driver-managed-5a1e0d6c2f3b"
IDENTITY = ("Test Author", "test@example.org")


@pytest.fixture
def imported(small_repo: Path, tmp_path: Path) -> dict[str, Path]:
    """The workspace of test_revisions with v1 exported and imported (so enrolled)."""
    ws = make_workspace(small_repo, tmp_path)
    cli(ws, "export", "--branch", "work", "--as", "v1", "--base", "master")
    out = cli(ws, "import", "v1")
    assert "b4 prep:  enrolled" in out, out
    ws["edit"] = Path(out.split("worktree: ")[1].split()[0])
    ws["mbox"] = ws["series"].parent / "v1.mbx"
    return ws


def run(ws: dict[str, Path], *args: str | Path) -> CliResult:
    return run_cli(*args, "--tree", ws["repo"], "--series", ws["series"],
                   "--cache-dir", ws["cache"])


def cli(ws: dict[str, Path], *args: str | Path) -> str:
    result = run(ws, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def trailers_of(edit: Path) -> list[list[str]]:
    """The trailer lines of each commit on top of master, oldest first."""
    log = git(edit, "log", "--reverse", "--format=%(trailers:unfold)%x1e", "master..HEAD")
    return [[t for t in record.strip("\n").splitlines() if t]
            for record in log.split("\x1e") if record.strip("\n")]


def test_import_enrolls_the_branch_for_b4(imported: dict[str, Path], tmp_path: Path) -> None:
    """The revision's cover letter and change-id where b4 prep keeps them; b4 send -o
    writes the revision; enrolling rewrites no commit (export gives v1.mbx back)."""
    ws = imported
    tracking = git(ws["repo"], "config", f"branch.{BRANCH}.b4-tracking")
    assert f'"change-id": "{CHANGE_ID}"' in tracking
    assert '"revision": 1' in tracking and '"base-branch": "master"' in tracking
    assert git(ws["repo"], "config", f"branch.{BRANCH}.description") == \
        (ws["series"].parent / "v1-cover.txt").read_text().strip()
    sent = b4_send(ws["edit"], tmp_path / "sent", IDENTITY)
    # b4 writes no "v1" for a first revision (git format-patch -v1 does).
    assert [subject_of(p) for p in sent] == \
        [p.subject.replace("[PATCH v1 ", "[PATCH ") for p in posted(ws["mbox"])]
    assert f"change-id: {CHANGE_ID}" in sent[0].read_text()
    assert patch_ids(ws["repo"], [p.read_text() for p in sent[1:]]) == \
        patch_ids(ws["repo"], [ws["mbox"].read_text()])
    v1 = ws["mbox"].read_bytes()
    cli(ws, "export", "--branch", BRANCH, "--as", "v1", "--base", "master", "--force")
    assert ws["mbox"].read_bytes() == v1
    head = git(ws["edit"], "rev-parse", "HEAD")
    # b4 prep --edit-cover edits the cover letter export uses when there is no vN-cover.txt.
    b4(ws["edit"], IDENTITY, "prep", "--edit-cover", editor="sed -i s/Demo/Edited/")
    cli(ws, "export", "--branch", BRANCH, "--as", "v2", "--base", "master")
    assert "Subject: [PATCH v2 0/2] Edited series for tests\n" in \
        (ws["series"].parent / "v2.mbx").read_text()
    out = cli(ws, "import", "v1", "--force")
    assert "b4 prep:  enrolled" in out and git(ws["edit"], "rev-parse", "HEAD") == head


MUTANTS = [
    # b4 reads no trailer from "Name by:" lines.
    ({"acked": "Acked by", "reviewed": "Reviewed by"}, "no new trailers"),
    # Replies to another thread answer no patch of this one.
    ({"thread_root": "another-thread@example.org"}, "no new trailers"),
    # b4 takes any "X-by: address"; kseries refuses names the kernel does not use.
    ({"reviewed": "Reviewd-by"}, "'Reviewd-by'"),
]


def test_trailers_from_a_saved_reply(imported: dict[str, Path], tmp_path: Path) -> None:
    """Bad input and bad replies change nothing; a good reply adds exactly its trailers."""
    ws = imported
    replies = review_replies(ws["mbox"], tmp_path / "replies.mbox")
    head = git(ws["edit"], "rev-parse", "HEAD")
    for args, needle in [
        (("--branch", "nope", "--from", replies), "no branch 'nope'"),
        (("--branch", "work", "--from", replies), "not enrolled with b4 prep"),
        (("--branch", BRANCH, "--from", tmp_path / "missing.mbox"), "no such file"),
    ]:
        assert_one_line_error(run(ws, "trailers", *args), needle)
    for number, (mutant, needle) in enumerate(MUTANTS):
        bad = review_replies(ws["mbox"], tmp_path / f"mutant-{number}.mbox", **mutant)
        assert_one_line_error(run(ws, "trailers", "--branch", BRANCH, "--from", bad), needle)
        assert git(ws["edit"], "rev-parse", "HEAD") == head, mutant
    before = snapshot(ws["repo"])
    out = cli(ws, "trailers", "--branch", BRANCH, "--from", replies)
    assert "3 trailers added" in out, out
    assert f"patch 1/2 mm: int line3_renamed;: + Reviewed-by: {REVIEWER}" in out
    assert f"patch 2/2 mm: long line15;: + Acked-by: {ACKER}" in out
    # git reads the body line "Why: tests." as a trailer too (it is in the trailer block).
    own = ["Why: tests.", "Signed-off-by: Test Author <test@example.org>"]
    assert trailers_of(ws["edit"]) == [[*own, f"Reviewed-by: {REVIEWER}"],
                                       [*own, f"Acked-by: {ACKER}", f"Reviewed-by: {REVIEWER}"]]
    assert snapshot(ws["repo"]) == before
    assert git(ws["edit"], "status", "--porcelain") == ""
    # The same replies again: b4 finds nothing new, a one-line error.
    assert_one_line_error(run(ws, "trailers", "--branch", BRANCH, "--from", replies),
                          "no new trailers")
    typo = review_replies(ws["mbox"], tmp_path / "typo.mbox", reviewed="Reviewd-by")
    out = cli(ws, "trailers", "--branch", BRANCH, "--from", typo, "--any-name")
    assert f"patch 2/2 mm: long line15;: + Reviewd-by: {REVIEWER}" in out
    # A commit by someone else than import's committer: b4 would refuse to rewrite it.
    source = ws["edit"] / "mm" / "a.c"
    source.write_text(source.read_text().replace("int line1;", "int line1; /* mine */"))
    git(ws["edit"], "commit", "-q", "-am", "mm: a comment", "-s")
    assert_one_line_error(run(ws, "trailers", "--branch", BRANCH, "--from", replies),
                          "kseries@localhost, test@example.org", "rebase --force-rebase")
    # A branch in no worktree (a rebase in progress, say) is not rewritten.
    git(ws["edit"], "checkout", "-q", "--detach")
    assert_one_line_error(run(ws, "trailers", "--branch", BRANCH, "--from", replies),
                          "not checked out in any worktree")


def test_cover_and_change_id_from_the_mbox_alone(tmp_path: Path) -> None:
    """Without vN-cover.txt, b4 gets the cover letter of vN.mbx without git's shortlog."""
    patches = ROOT / "patches"
    assert cover_of_revision(patches / "v2.mbx", tmp_path / "none.txt") == \
        (patches / "v2-cover.txt").read_text()
    assert change_id_of_revision(patches / "v2.mbx", "default") == CHANGE_ID


def test_added_trailers_counts_repeats() -> None:
    before = [("one", ("Signed-off-by: X <x@x>",)), ("two", ("Acked-by: Y <y@y>",))]
    after = [("one", ("Signed-off-by: X <x@x>", "Acked-by: Y <y@y>")),
             ("two", ("Acked-by: Y <y@y>", "Acked-by: Y <y@y>"))]
    assert added_trailers(before, after) == (Added(1, 2, "one", "Acked-by: Y <y@y>"),
                                             Added(2, 2, "two", "Acked-by: Y <y@y>"))
