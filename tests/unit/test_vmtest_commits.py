"""The runtime bisect's shortcut: a commit that changes nothing built for the guest's arch
is not booted (its kernel is its parent's) and says so as a skip with the reason."""

from __future__ import annotations

from pathlib import Path

from kseries.stages.vmtest.variants import CommitRun, commit_checks, not_built_for
from tests.conftest import git


def commit(repo: Path, *paths: str) -> str:
    for path in paths:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(f"changed {path}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return git(repo, "rev-parse", "HEAD")


def test_a_commit_only_under_another_arch_is_not_built_here(small_repo: Path) -> None:
    powerpc = commit(small_repo, "arch/powerpc/kexec/file_load_64.c", "Documentation/x.rst")
    reason = not_built_for(small_repo, powerpc, "x86_64")
    assert reason is not None and reason.startswith(
        "changes only Documentation/, arch/powerpc/: nothing of it is built for x86_64")
    assert not_built_for(small_repo, powerpc, "arm64") is not None


def test_a_commit_touching_this_arch_or_common_code_is_booted(small_repo: Path) -> None:
    x86 = commit(small_repo, "arch/x86/kernel/e820.c")
    assert not_built_for(small_repo, x86, "x86_64") is None
    assert not_built_for(small_repo, x86, "arm64") is not None
    mixed = commit(small_repo, "arch/powerpc/a.c", "mm/a.c")
    assert not_built_for(small_repo, mixed, "x86_64") is None


def test_a_skipped_commit_is_a_skip_check_with_its_reason() -> None:
    [check] = commit_checks("x86_64", [CommitRun(1, "powerpc: fix", "abc", skipped="why")])
    assert (check.name, check.status, check.step) == ("x86_64.commit 1", "skip", "patch 1")
    assert check.summary == "powerpc: fix: why" and check.rule == "runtime-bisect"
