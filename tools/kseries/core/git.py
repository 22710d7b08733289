"""Small git helpers on top of proc.run (plumbing commands, argument lists)."""

from __future__ import annotations

from pathlib import Path

from kseries.core.errors import KseriesError
from kseries.core.proc import run

# Settings that make our own git operations independent of the user's config.
SAFE_CONFIG = (
    "-c", "core.autocrlf=false",
    "-c", "core.fileMode=true",
    "-c", "commit.gpgsign=false",
    "-c", "gc.auto=0",
    "-c", "advice.detachedHead=false",
)

# Blob ids in a patch's "index" lines at a fixed length (the kernel's core.abbrev): git's
# default grows with the number of *packed* objects, so the same commits would give other
# bytes in a freshly imported (unpacked) tree than in a repacked one.
INDEX_ABBREV = "--abbrev=12"


def git(repo: Path, *args: str, check: bool = True, input_text: str | None = None) -> str:
    """Run git in REPO and return stdout (stripped of the final newline)."""
    proc = run(["git", *SAFE_CONFIG, "-C", str(repo), *args], check=check, input_text=input_text,
               what=f"git {args[0]}")
    return proc.stdout.rstrip("\n")


def is_git_repo(path: Path) -> bool:
    proc = run(["git", "-C", str(path), "rev-parse", "--git-dir"], check=False)
    return proc.returncode == 0


def toplevel(path: Path) -> Path:
    return Path(git(path, "rev-parse", "--show-toplevel"))


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The full commit id of REV in REPO, or None when REPO does not know it."""
    proc = run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
               check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def head_commit(repo: Path) -> str:
    commit = resolve_commit(repo, "HEAD")
    if commit is None:
        raise KseriesError(f"{repo} has no commits; commit the kernel source first")
    return commit


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    proc = run(["git", "-C", str(repo), "merge-base", "--is-ancestor", ancestor, descendant],
               check=False)
    return proc.returncode == 0
