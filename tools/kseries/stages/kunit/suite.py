"""Where the KUnit suite comes from, and laying it onto the scratch worktree.

A revision posted with its KUnit patch (v3 on) carries the suite: one of its commits adds
mm/memory_hotplug_kunit.c. Then the series runs as applied, and every commit without the
suite (the base, for --against-base) gets that commit's diff (`git apply`) plus the
overlay's base shim, so the suite that runs there is the one the series posts. A revision
without it (v2) gets kernel-overlay/ laid on top, as before.

Laying only adds untracked files and edits tracked ones, so apply.checkout() (`git checkout
-f`, `git clean -fd`) removes it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.stages.kunit.overlay import Overlay, lay_overlay, lay_parts

SUITE_SOURCE = "mm/memory_hotplug_kunit.c"


@dataclass(frozen=True)
class Suite:
    """The overlay (always: its base shim) and, when the series carries the suite, the
    commit that adds it and that commit's diff."""

    overlay: Overlay
    commit: str | None = None
    subject: str = ""
    patch: str = ""

    @property
    def in_series(self) -> bool:
        return self.commit is not None

    def describe(self) -> str:
        if self.commit is None:
            return f"the suite from {self.overlay.root.name}/ (the series does not carry it)"
        return f"the suite from the series: {self.commit[:12]} (\"{self.subject}\")"


def find_suite(worktree: Path, base: str, head: str, overlay: Overlay) -> Suite:
    """The series commit in BASE..HEAD that adds SUITE_SOURCE, else the overlay alone."""
    found = g.git(worktree, "log", "--diff-filter=A", "--format=%H", f"{base}..{head}",
                  "--", SUITE_SOURCE).split()
    if not found:
        return Suite(overlay)
    if len(found) > 1:
        raise KseriesError(f"the series adds {SUITE_SOURCE} in {len(found)} commits "
                           f"({', '.join(c[:12] for c in found)}); expected one")
    commit = found[0]
    subject = g.git(worktree, "log", "-1", "--format=%s", commit)
    patch = g.git(worktree, "diff", "--binary", f"{commit}^", commit) + "\n"
    return Suite(overlay, commit, subject, patch)


def has_suite(worktree: Path) -> bool:
    """Whether the commit checked out in WORKTREE tracks the suite's source."""
    listed = g.git(worktree, "ls-files", "--", SUITE_SOURCE)
    return bool(listed)


def lay_suite(suite: Suite, worktree: Path, on_base: bool) -> str:
    """Make the suite build at the commit checked out in WORKTREE; return how.

    ON_BASE: the commit is the base without the series (the shim makes MHP_DRIVER_MANAGED
    known there)."""
    if not suite.in_series:
        lay_overlay(suite.overlay, worktree, on_base=on_base)
        return "overlay"
    if has_suite(worktree):
        return "series"
    applied = g.run_git(worktree, "apply", "--whitespace=nowarn", "-", input_text=suite.patch,
                        check=False)
    if applied.returncode != 0:
        detail = (applied.stderr.strip().splitlines() or ["no output"])[0]
        raise KseriesError(f"the suite's patch {suite.commit and suite.commit[:12]} does not "
                           f"apply at {g.git(worktree, 'rev-parse', '--short=12', 'HEAD')}: "
                           f"{detail}")
    if on_base:
        lay_parts(suite.overlay, worktree, suite.overlay.base_files, suite.overlay.base_hooks)
    return "suite patch" + (" + base shim" if on_base else "")


def suite_text(worktree: Path, suite: Suite) -> str:
    """The suite's source as it ran: the file laid in WORKTREE, else the overlay's."""
    laid = worktree / SUITE_SOURCE
    if laid.is_file():
        return laid.read_text()
    return suite.overlay.source(SUITE_SOURCE).read_text()
