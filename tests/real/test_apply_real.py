"""kseries apply on the real 6.12 tree, and on a user's own checkout of it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kseries.kernel.tree import Tree
from tests.conftest import FIXTURES, assert_one_line_error, git, run_cli, snapshot

pytestmark = pytest.mark.realtree


@pytest.fixture(scope="module")
def user_checkout(real_tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A user's own clone of the real tree, with uncommitted, staged and untracked work."""
    clone = tmp_path_factory.mktemp("user") / "linux"
    git(real_tree.path, "clone", "-q", "--shared", str(real_tree.path), str(clone))
    git(clone, "checkout", "-q", "-b", "my-work")
    hotplug = clone / "mm" / "memory_hotplug.c"
    hotplug.write_text(hotplug.read_text() + "/* my uncommitted edit */\n")
    (clone / "MY-NOTES").write_text("untracked notes\n")
    kconfig = clone / "mm" / "Kconfig"
    kconfig.write_text(kconfig.read_text() + "# staged edit\n")
    git(clone, "add", "mm/Kconfig")
    yield clone
    shutil.rmtree(clone.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the user-checkout tests, so its scratch worktree is made once."""
    return tmp_path_factory.mktemp("user-cache")


def test_small_series_applies_to_real_tree(real_tree: Tree, tmp_path: Path) -> None:
    result = run_cli("apply", "--mbox", FIXTURES / "small-series.mbx")
    assert result.returncode == 0, result.stderr
    assert "b4: Base: applies clean to current tree" in result.stdout
    assert f"applied: 2 patches on {real_tree.base_commit}" in result.stdout
    worktree = Path(result.stdout.split("worktree:")[1].split()[0])
    assert "serialised by the\n * device hotplug lock" in (
        worktree / "drivers" / "base" / "memory.c").read_text()
    log = git(worktree, "log", "--format=%s", f"{real_tree.base_commit}..HEAD")
    assert log.splitlines() == ["mm/memory_hotplug: Reword pfn_to_online_page() comment",
                                "drivers/base/memory: Document probe_store() locking"]


def test_conflict_on_real_tree_names_patch_file_hunk(real_tree: Tree) -> None:
    result = run_cli("apply", "--mbox", FIXTURES / "conflict-series.mbx")
    assert_one_line_error(result, "patch 2/2", "pfn_to_online_page", "mm/memory_hotplug.c",
                          "hunk @@ -338,7 +338,7 @@", "nothing was applied")


def test_user_checkout_survives_conflicting_apply_byte_identical(user_checkout: Path,
                                                                  user_cache: Path) -> None:
    before = snapshot(user_checkout)
    result = run_cli("apply", "--tree", user_checkout, "--mbox", FIXTURES / "conflict-series.mbx",
                     "--cache-dir", user_cache)
    assert_one_line_error(result, "patch 2/2", "nothing was applied")
    assert snapshot(user_checkout) == before


def test_user_checkout_survives_good_apply(user_checkout: Path, user_cache: Path) -> None:
    before = snapshot(user_checkout)
    result = run_cli("apply", "--tree", user_checkout, "--mbox", FIXTURES / "small-series.mbx",
                     "--cache-dir", user_cache)
    assert result.returncode == 0, result.stderr
    assert snapshot(user_checkout) == before
    assert "my uncommitted edit" in (user_checkout / "mm" / "memory_hotplug.c").read_text()
