"""kseries import enrolls with b4 prep and kseries trailers runs b4 trailers -u, on the real
tree with the real series (patches/v2.mbx); the small-repo variant: tests/unit/test_trailers.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kseries.kernel.tree import Tree
from tests.conftest import (
    ROOT,
    assert_one_line_error,
    git,
    release_edit_worktree,
    run_cli,
    snapshot,
)
from tests.trailer_replies import (
    ACKER,
    REVIEWER,
    b4_send,
    patch_ids,
    posted,
    review_replies,
    subject_of,
)

pytestmark = pytest.mark.realtree
BRANCH = "kseries-test/v2-trailers"
CHANGE_ID = "20200429-mhp-driver-managed-5a1e0d6c2f3b"
MUTANTS = [
    # b4 reads no trailer from "Name by:" lines.
    ({"acked": "Acked by", "reviewed": "Reviewed by"}, "no new trailers"),
    # Replies in another thread answer no patch of v2.
    ({"thread_root": "another-thread@example.org"}, "no new trailers"),
    # b4 would take "Reviewd-by:"; kseries refuses a name the kernel does not use.
    ({"reviewed": "Reviewd-by"}, "'Reviewd-by'"),
]


@pytest.fixture
def edit(real_tree: Tree, patches: Path) -> Iterator[Path]:
    """v2 imported (and enrolled) on BRANCH; the worktree, branch and b4's backup ref go after."""
    out = kseries(patches, "import", "v2", "--branch", BRANCH, "--force")
    assert "b4 prep:  enrolled" in out, out
    worktree = Path(out.split("worktree:")[1].split()[0])
    yield worktree
    release_edit_worktree(real_tree.path, worktree, BRANCH)


def kseries(patches: Path, *args: str | Path) -> str:
    result = run_cli(*args, "--series", patches / "series.toml")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def refs(repo: Path) -> list[str]:
    """Every ref but the edit branch, b4's backup of it and kseries' scratch branches."""
    mine = (f"refs/heads/{BRANCH} ", f"refs/original/{BRANCH} ", "refs/heads/kseries/")
    lines = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return [line for line in lines if not line.startswith(mine)]


def series_trailers(worktree: Path, base: str) -> list[list[str]]:
    log = git(worktree, "log", "--reverse", "--format=%(trailers:unfold)%x1e", f"{base}..HEAD")
    return [[t for t in record.strip("\n").splitlines() if t]
            for record in log.split("\x1e") if record.strip("\n")]


def test_enrolled_v2_gets_review_trailers(real_tree: Tree, patches: Path, tmp_path: Path,
                                          edit: Path) -> None:
    repo, base, v2 = real_tree.path, real_tree.base_commit, patches / "v2.mbx"
    tracking = git(repo, "config", f"branch.{BRANCH}.b4-tracking")
    assert f'"change-id": "{CHANGE_ID}"' in tracking and '"revision": 2' in tracking
    assert '"base-branch": "base"' in tracking
    # Enrolled, the branch still exports as v2.mbx, byte for byte.
    kseries(patches, "export", "--branch", BRANCH, "--as", "v2", "--force")
    assert v2.read_bytes() == (ROOT / "patches" / "v2.mbx").read_bytes()
    # b4 send -o writes v2 as posted: cover letter and 4 patches, same subjects and diffs.
    sender = (git(edit, "log", "-1", "--format=%an"), git(edit, "log", "-1", "--format=%ae"))
    sent = b4_send(edit, tmp_path / "sent", sender)
    assert len(sent) == 5
    assert [subject_of(p) for p in sent] == [p.subject for p in posted(v2)]
    assert f"change-id: {CHANGE_ID}" in sent[0].read_text()
    assert "\nSome hot-plugged memory is never part of the firmware-provided memory\n" in \
        sent[0].read_text()
    assert patch_ids(repo, [p.read_text() for p in sent[1:]]) == patch_ids(repo, [v2.read_text()])

    own, head = series_trailers(edit, base), git(edit, "rev-parse", "HEAD")
    user_tree, user_refs = snapshot(repo), refs(repo)
    for number, (mutant, needle) in enumerate(MUTANTS):
        bad = review_replies(v2, tmp_path / f"mutant-{number}.mbox", **mutant)
        result = run_cli("trailers", "--branch", BRANCH, "--from", bad,
                         "--series", patches / "series.toml")
        assert_one_line_error(result, needle)
        assert git(edit, "rev-parse", "HEAD") == head, mutant

    replies = review_replies(v2, tmp_path / "replies.mbox")
    out = kseries(patches, "trailers", "--branch", BRANCH, "--from", replies)
    assert "5 trailers added" in out, out
    # Exactly these trailers, after the patches' own (the cover letter's on every patch).
    review, ack = f"Reviewed-by: {REVIEWER}", f"Acked-by: {ACKER}"
    now = series_trailers(edit, base)
    assert [after[:len(before)] for before, after in zip(own, now, strict=True)] == own
    added = [sorted(after[len(before):]) for before, after in zip(own, now, strict=True)]
    assert added == [[review], sorted([ack, review]), [review], [review]]
    assert git(edit, "status", "--porcelain") == ""
    assert snapshot(repo) == user_tree and refs(repo) == user_refs

    # The trailered branch exports as v4: the same 4 patches (no cover commit among them).
    shutil.copy(patches / "v2-cover.txt", patches / "v4-cover.txt")
    kseries(patches, "export", "--branch", BRANCH, "--as", "v4")
    v4 = (patches / "v4.mbx").read_text()
    assert "[PATCH v4 4/4]" in v4 and "[PATCH v4 5/" not in v4
    assert v4.count(review) == 4 and v4.count(ack) == 1
    assert b4_send(edit, tmp_path / "sent-after", sender)[2].read_text().count(ack) == 1
