"""kseries apply on small fixture repos: scratch worktree, conflicts, re-apply, no damage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.core.lock import cache_lock
from kseries.kernel.tree import open_user_tree
from kseries.series.apply import apply_series, worktree_path
from tests.conftest import assert_one_line_error, git, make_series, run_cli, snapshot

EDITS = [("mm/a.c", "int line3;\n", "int line3_renamed;\n"),
         ("mm/a.c", "int line15;\n", "long line15;\n")]


@pytest.fixture
def series_mbox(small_repo: Path, tmp_path: Path) -> Path:
    return make_series(small_repo, EDITS, tmp_path / "series.mbx")


def test_apply_in_scratch_worktree(small_repo: Path, series_mbox: Path, tmp_path: Path) -> None:
    before = snapshot(small_repo)
    tree = open_user_tree(small_repo)
    result = apply_series(tree, series_mbox, tmp_path / "cache", "demo", "v1")
    assert snapshot(small_repo) == before
    assert result.worktree == worktree_path(tmp_path / "cache", tree)
    assert [p.subject for p in result.patches] == ["mm: change 1", "mm: change 2"]
    assert "int line3_renamed;" in (result.worktree / "mm" / "a.c").read_text()
    assert git(small_repo, "rev-parse", "kseries/demo/v1") == result.head
    assert not result.already_applied


def test_reapply_reuses_worktree_and_gives_same_commits(small_repo: Path, series_mbox: Path,
                                                         tmp_path: Path) -> None:
    tree = open_user_tree(small_repo)
    first = apply_series(tree, series_mbox, tmp_path / "c", "demo", "v1")
    second = apply_series(tree, series_mbox, tmp_path / "c", "demo", "v1")
    assert first.worktree == second.worktree
    assert first.head == second.head


@pytest.mark.parametrize("cover", [True, False])
def test_mbox_without_message_ids_is_threaded_for_b4(small_repo: Path, series_mbox: Path,
                                                      tmp_path: Path, cover: bool) -> None:
    """format-patch without --thread writes no Message-Id; b4 alone cannot read that."""
    unthreaded = tmp_path / "unthreaded.mbx"
    source = series_mbox if cover else make_series(small_repo, EDITS, tmp_path / "nc.mbx",
                                                   cover=False)
    unthreaded.write_text("".join(
        line for line in source.read_text().splitlines(keepends=True)
        if not line.lower().startswith(("message-id:", "in-reply-to:", "references:"))))
    tree = open_user_tree(small_repo)
    result = apply_series(tree, unthreaded, tmp_path / "cache", "demo", "v1")
    assert [p.subject for p in result.patches] == ["mm: change 1", "mm: change 2"]
    assert any("without Message-Id" in note for note in result.notes)
    assert unthreaded.read_text().count("Message-Id") == 0  # the user's file is untouched


def test_conflict_names_patch_file_and_hunk(small_repo: Path, series_mbox: Path,
                                            tmp_path: Path) -> None:
    (small_repo / "mm" / "a.c").write_text((small_repo / "mm" / "a.c").read_text()
                                           .replace("int line14;\n", "int line14_changed;\n"))
    git(small_repo, "commit", "-q", "-am", "upstream moved on")
    before = snapshot(small_repo)
    result = run_cli("apply", "--tree", small_repo, "--mbox", series_mbox, "--onto", "HEAD",
                     "--cache-dir", tmp_path / "cache")
    assert_one_line_error(result, "patch 2/2 'mm: change 2'", "mm/a.c", "hunk @@ -12,7 +12,7 @@",
                          "nothing was applied")
    assert snapshot(small_repo) == before
    worktree = worktree_path(tmp_path / "cache", open_user_tree(small_repo))
    assert git(worktree, "rev-parse", "HEAD") == git(small_repo, "rev-parse", "HEAD")
    assert git(worktree, "status", "--porcelain") == ""
    # git am keeps its state in the linked worktree's own git dir: it must be gone, or every
    # later apply in this worktree fails ("previous rebase directory ... still exists").
    assert not (Path(git(worktree, "rev-parse", "--absolute-git-dir")) / "rebase-apply").exists()
    again = run_cli("apply", "--tree", small_repo, "--mbox", series_mbox, "--onto", "HEAD~1",
                    "--cache-dir", tmp_path / "cache")
    assert again.returncode == 0, again.stderr


def test_already_applied_is_recognised(small_repo: Path, series_mbox: Path,
                                       tmp_path: Path) -> None:
    git(small_repo, "am", "-q", "--empty=drop", str(series_mbox))
    result = run_cli("apply", "--tree", small_repo, "--mbox", series_mbox,
                     "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "already applied: 2 patches" in result.stdout


def test_dirty_user_tree_is_left_alone(small_repo: Path, series_mbox: Path,
                                       tmp_path: Path) -> None:
    (small_repo / "mm" / "a.c").write_text("my uncommitted work\n")
    (small_repo / "notes.txt").write_text("untracked\n")
    (small_repo / "Makefile").write_text((small_repo / "Makefile").read_text() + "# staged\n")
    git(small_repo, "add", "Makefile")
    before = snapshot(small_repo)
    result = run_cli("apply", "--tree", small_repo, "--mbox", series_mbox,
                     "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert snapshot(small_repo) == before


def test_wrong_base_is_reported_and_still_tried(small_repo: Path, series_mbox: Path,
                                                tmp_path: Path) -> None:
    text = series_mbox.read_text()
    base = git(small_repo, "rev-parse", "HEAD")
    moved = tmp_path / "moved.mbx"
    moved.write_text(text.replace(f"base-commit: {base}", "base-commit: " + "1" * 40))
    result = run_cli("apply", "--tree", small_repo, "--mbox", moved,
                     "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "base-commit 111111111111 is not in" in result.stdout
    assert "applied: 2 patches" in result.stdout


def test_tree_that_is_not_a_git_repo(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run_cli("apply", "--tree", plain, "--mbox", "tests/fixtures/small-series.mbx",
                     "--cache-dir", tmp_path / "cache")
    assert_one_line_error(result, "is not a git repository")


def test_missing_tree_directory(tmp_path: Path) -> None:
    result = run_cli("apply", "--tree", tmp_path / "nowhere", "--cache-dir", tmp_path / "c")
    assert_one_line_error(result, "is not a directory")


def test_git_repo_that_is_not_linux(tmp_path: Path) -> None:
    repo = tmp_path / "other"
    repo.mkdir()
    (repo / "README").write_text("hi\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x")
    result = run_cli("apply", "--tree", repo, "--mbox", "tests/fixtures/small-series.mbx",
                     "--cache-dir", tmp_path / "cache")
    assert_one_line_error(result, "not a Linux source tree")


@pytest.mark.parametrize(("content", "needle"), [
    (None, "does not exist"),
    ("", "is empty"),
    ("garbage (((\n", "no mail messages"),
])
def test_bad_mbox_via_cli(small_repo: Path, tmp_path: Path, content: str | None,
                          needle: str) -> None:
    mbox = tmp_path / "bad.mbx"
    if content is not None:
        mbox.write_text(content)
    before = snapshot(small_repo)
    result = run_cli("apply", "--tree", small_repo, "--mbox", mbox, "--cache-dir", tmp_path / "c")
    assert_one_line_error(result, needle)
    assert snapshot(small_repo) == before


def test_unsafe_path_refused_before_anything_happens(small_repo: Path, series_mbox: Path,
                                                     tmp_path: Path) -> None:
    evil = tmp_path / "evil.mbx"
    evil.write_text(series_mbox.read_text().replace("a/mm/a.c b/mm/a.c", "a/../x.c b/../x.c"))
    result = run_cli("apply", "--tree", small_repo, "--mbox", evil, "--cache-dir", tmp_path / "c")
    assert_one_line_error(result, "unsafe path '../x.c'")
    assert not (tmp_path / "c" / "worktrees").exists()


def test_onto_unknown_revision(small_repo: Path, series_mbox: Path, tmp_path: Path) -> None:
    with pytest.raises(KseriesError, match="--onto nope is not a commit"):
        apply_series(open_user_tree(small_repo), series_mbox, tmp_path, "d", "v1",
                     onto="nope")


def test_second_run_on_the_same_cache_waits_for_the_first(small_repo: Path, series_mbox: Path,
                                                           tmp_path: Path) -> None:
    """Runs share the cache's scratch worktree: the second waits, then applies normally."""
    cache = tmp_path / "cache"
    kseries = Path(sys.executable).parent / "kseries"
    with cache_lock(cache, "a test holding the lock", lambda _m: None):
        proc = subprocess.Popen([str(kseries), "apply", "--tree", str(small_repo), "--mbox",
                                 str(series_mbox), "--cache-dir", str(cache)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "waiting for another kseries run on" in first
        assert "a test holding the lock" in first
        assert proc.poll() is None
        assert not worktree_path(cache, open_user_tree(small_repo)).exists()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "applied: 2 patches" in out
