"""Where the KUnit suite comes from: the series' own KUnit patch (v3 on) or kernel-overlay/
(v2), on a small git repo with the lines the overlay and the suite patch touch."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.series import apply as ap
from kseries.stages.kunit.overlay import load_overlay
from kseries.stages.kunit.suite import SUITE_SOURCE, find_suite, lay_suite, suite_text
from tests.conftest import MM_MAKEFILE, git

SHIM = "mm/memory_hotplug_kunit_base.h"
SUITE_LINE = "obj-$(CONFIG_MEMORY_HOTPLUG_KUNIT_TEST) += memory_hotplug_kunit.o"
OWN_SUITE = "// the series' own suite\nstatic struct kunit_suite s = { .name = \"own\" };\n"


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def series_with_suite(repo: Path) -> tuple[str, str, str]:
    """base, the suite commit, head: a change, then the series' own KUnit patch."""
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, "mm: a change", {"mm/a.c": "int changed;\n"})
    makefile = MM_MAKEFILE.replace("dmapool_test.o\n", f"dmapool_test.o\n{SUITE_LINE}\n")
    suite = commit(repo, "mm: Add KUnit tests", {SUITE_SOURCE: OWN_SUITE, "mm/Makefile": makefile})
    return base, suite, suite


def test_a_series_without_the_suite_gets_the_overlay(mm_repo: Path) -> None:
    base = git(mm_repo, "rev-parse", "HEAD")
    head = commit(mm_repo, "mm: a change", {"mm/a.c": "int changed;\n"})
    suite = find_suite(mm_repo, base, head, load_overlay())
    assert not suite.in_series and "kernel-overlay/" in suite.describe()
    assert lay_suite(suite, mm_repo, on_base=False) == "overlay"
    assert suite_text(mm_repo, suite) == load_overlay().source(SUITE_SOURCE).read_text()
    assert not (mm_repo / SHIM).exists()


def test_the_series_suite_runs_as_applied_and_is_patched_onto_the_base(mm_repo: Path) -> None:
    base, suite_commit, head = series_with_suite(mm_repo)
    suite = find_suite(mm_repo, base, head, load_overlay())
    assert suite.commit == suite_commit and suite.subject == "mm: Add KUnit tests"
    assert suite.describe().endswith(f'{suite_commit[:12]} ("mm: Add KUnit tests")')
    # at the head nothing is laid: the series carries the suite
    assert lay_suite(suite, mm_repo, on_base=False) == "series"
    assert git(mm_repo, "status", "--porcelain") == ""
    assert suite_text(mm_repo, suite) == OWN_SUITE
    # on the base: the series' suite patch, plus the overlay's shim
    ap.checkout(mm_repo, base)
    assert lay_suite(suite, mm_repo, on_base=True) == "suite patch + base shim"
    assert (mm_repo / SUITE_SOURCE).read_text() == OWN_SUITE
    makefile = (mm_repo / "mm" / "Makefile").read_text().splitlines()
    at = makefile.index(SUITE_LINE)
    assert makefile[at + 1].startswith("CFLAGS_memory_hotplug_kunit.o += -include")
    assert (mm_repo / SHIM).is_file()
    assert suite_text(mm_repo, suite) == OWN_SUITE
    # an earlier commit of the series gets the patch without the shim when asked so
    ap.checkout(mm_repo, f"{suite_commit}^")
    assert lay_suite(suite, mm_repo, on_base=False) == "suite patch"
    assert not (mm_repo / SHIM).exists()
    ap.checkout(mm_repo, head)
    assert git(mm_repo, "status", "--porcelain") == ""


def test_a_suite_patch_that_does_not_apply_is_one_line(mm_repo: Path) -> None:
    base, _, head = series_with_suite(mm_repo)
    suite = find_suite(mm_repo, base, head, load_overlay())
    ap.checkout(mm_repo, base)
    (mm_repo / "mm" / "Makefile").write_text("obj-y += other.o\n")
    git(mm_repo, "commit", "-q", "-a", "-m", "Makefile rewritten")
    with pytest.raises(KseriesError, match=r"^the suite's patch [0-9a-f]{12} does not apply at "
                                           r"[0-9a-f]{12}: error: patch failed: mm/Makefile"):
        lay_suite(suite, mm_repo, on_base=True)


def test_a_series_adding_the_suite_twice_is_refused(mm_repo: Path) -> None:
    base = git(mm_repo, "rev-parse", "HEAD")
    commit(mm_repo, "add", {SUITE_SOURCE: "one\n"})
    git(mm_repo, "rm", "-q", SUITE_SOURCE)
    git(mm_repo, "commit", "-q", "-m", "drop")
    head = commit(mm_repo, "add again", {SUITE_SOURCE: "two\n"})
    with pytest.raises(KseriesError, match=r"adds mm/memory_hotplug_kunit.c in 2 commits"):
        find_suite(mm_repo, base, head, load_overlay())
