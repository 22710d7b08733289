"""The KUnit overlay on the real 6.12 tree, for a series that does not carry the suite (v2):
what format_patch() makes of kernel-overlay/ is patches/extra/0001, and it applies on v2's
head. No kernel is built here: the v3 test (test_kunit_v3_real.py) builds and boots the
suite at the base, at every patch and at the head through the same laying of a suite onto
a tree that lacks it, and v2's own KUnit run is a `kseries kunit --mbox patches/v2.mbx`
away (a v2 build has headers of its own: a full cold compile, too dear for make check).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.kernel.tree import Tree, cache_dir
from kseries.series.apply import ApplyResult, apply_series
from kseries.series.config import load_series
from kseries.stages.kunit.overlay import format_patch, load_overlay
from kseries.stages.kunit.suite import SUITE_SOURCE
from tests.conftest import ROOT, git

pytestmark = pytest.mark.realtree


@pytest.fixture(scope="module")
def v2(real_tree: Tree) -> ApplyResult:
    """v2 in the shared cache's scratch worktree (warm: a new one is an 80k-file checkout)."""
    return apply_series(real_tree, load_series().revision("v2").mbox, cache_dir(), "overlay",
                        "v2")


def test_v2_lacks_the_suite_so_kunit_lays_the_overlay(v2: ApplyResult) -> None:
    assert git(v2.worktree, "ls-files", SUITE_SOURCE) == ""
    assert (ROOT / "kernel-overlay" / SUITE_SOURCE).is_file()


def test_extra_patch_is_the_overlay_on_the_series(v2: ApplyResult, real_tree: Tree) -> None:
    """patches/extra/0001 is what format_patch() makes of the overlay, and it applies."""
    message = (ROOT / "kernel-overlay" / "commit-message.txt").read_text()
    made = format_patch(load_overlay(), real_tree.path, v2.head, message)
    [posted] = sorted((ROOT / "patches" / "extra").glob("0001-*.patch"))
    text = posted.read_text()
    assert made.split("\n", 1)[1] == text.split("\n", 1)[1]
    git(v2.worktree, "apply", "--check", str(posted))
    assert Path(v2.worktree).is_dir() and git(v2.worktree, "status", "--porcelain") == ""
