"""Apply a mailbox series with b4 in a scratch worktree; the user's checkout is never touched.

Layout: <cache>/worktrees/<key>/ is a detached git worktree of the tree (one per tree,
reused by every stage, so build directories stay warm); a successful apply also sets
the scratch branch kseries/<series>/<revision> in the tree's repository.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.core.proc import command_line, last_line
from kseries.kernel.tree import Tree
from kseries.series.b4am import Prepared, prepare
from kseries.series.mbox import Series

APPLY_IDENTITY = {"user.name": "kseries", "user.email": "kseries@localhost"}
APPLYING_RE = re.compile(r"^Applying: (.*)$", re.MULTILINE)
FAILED_AT_RE = re.compile(r"^Patch failed at (\d+) (.*)$", re.MULTILINE)
PATCH_FAILED_RE = re.compile(r"^error: patch failed: (.+):(\d+)$", re.MULTILINE)
NOT_APPLY_RE = re.compile(r"^error: (.+): (patch does not apply|does not exist in index|"
                          r"already exists in (?:index|working directory))$", re.MULTILINE)
WHITESPACE_RE = re.compile(r"^warning: .*whitespace error.*$", re.MULTILINE)


@dataclass(frozen=True)
class AppliedPatch:
    index: int
    subject: str
    commit: str


@dataclass(frozen=True)
class ApplyResult:
    worktree: Path
    branch: str
    base: str
    head: str
    patches: tuple[AppliedPatch, ...]
    already_applied: bool
    notes: tuple[str, ...]
    reproducer: str
    series: Series | None = None
    prepared: Prepared | None = None


def worktree_path(cache: Path, tree: Tree) -> Path:
    key = hashlib.sha1(str(tree.path.resolve()).encode()).hexdigest()[:10]
    return cache / "worktrees" / f"{tree.path.name}-{key}"


def scratch_branch(series_name: str, revision: str) -> str:
    return f"kseries/{series_name}/{revision}"


def ensure_worktree(tree: Tree, path: Path, commit: str) -> Path:
    """A detached worktree of TREE at PATH (created or reused), checked out at COMMIT."""
    if not (path / ".git").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        g.add_worktree(tree.path, path, commit)
    else:
        checkout(path, commit)
    return path


def drop_stale_index_lock(worktree: Path, min_age_s: float = 60.0) -> None:
    """Remove an index.lock left in OUR scratch worktree by a killed git (older than a minute)."""
    lock = g.git_dir(worktree) / "index.lock"
    if lock.is_file() and time.time() - lock.stat().st_mtime > min_age_s:
        lock.unlink()


def checkout(worktree: Path, commit: str) -> None:
    """Force our scratch worktree to COMMIT (it is ours: nothing of the user's lives there)."""
    if (worktree / ".git").is_file():
        drop_stale_index_lock(worktree)
        g.am_abort(worktree, APPLY_IDENTITY)
    g.force_checkout(worktree, commit)


def choose_base(tree: Tree, series: Series, onto: str | None) -> tuple[str, list[str]]:
    """Where to apply: --onto, else the series' base-commit if known, else the tree's HEAD."""
    notes: list[str] = []
    if onto:
        commit = g.resolve_commit(tree.path, onto)
        if commit is None:
            raise KseriesError(f"--onto {onto} is not a commit in {tree.path}")
        return commit, notes
    wanted = series.base_commit
    if wanted is None:
        notes.append(f"series has no base-commit: trailer; applying on the tree's HEAD "
                     f"{tree.base_commit[:12]}")
        return tree.base_commit, notes
    known = g.resolve_commit(tree.path, wanted)
    if known is None:
        notes.append(f"base-commit {wanted[:12]} is not in {tree.path}; trying the tree's HEAD "
                     f"{tree.base_commit[:12]} instead")
        return tree.base_commit, notes
    if known != tree.base_commit:
        notes.append(f"base-commit {wanted[:12]} differs from the tree's HEAD "
                     f"{tree.base_commit[:12]}; applying on the base-commit")
    return known, notes


def patch_ids(repo: Path, diffs: list[str]) -> list[str]:
    """git patch-id --stable of each diff text (content identity, ignoring line numbers)."""
    ids = []
    for diff in diffs:
        found = g.patch_ids(repo, diff)
        ids.append(found[0][0] if found else "")
    return ids


def find_already_applied(tree: Tree, series: Series) -> tuple[AppliedPatch, ...] | None:
    """The commits of TREE's HEAD history that carry every patch of SERIES, if all are there."""
    wanted = patch_ids(tree.path, [p.diff for p in series.patches])
    log = g.git(tree.path, "log", "-p", "--min-parents=1", "--max-parents=1", "-n", "200",
                "--format=commit %H", "HEAD")
    commit_of = dict(g.patch_ids(tree.path, log + "\n")) if log else {}
    if not all(pid in commit_of for pid in wanted):
        return None
    return tuple(AppliedPatch(p.index, p.subject, commit_of[pid])
                 for p, pid in zip(series.patches, wanted, strict=True))


def apply_series(tree: Tree, source: Path, cache: Path, series_name: str, revision: str,
                 onto: str | None = None, thread_revision: int | None = None) -> ApplyResult:
    """Apply the thread in SOURCE as b4 would (see b4am.py) in our scratch worktree of TREE."""
    prepared = prepare(source, b4_dir(cache, series_name, revision), tree.path, thread_revision)
    series = prepared.series
    branch = scratch_branch(series_name, revision)
    worktree = worktree_path(cache, tree)
    already = find_already_applied(tree, series)
    if already is not None:
        first_parent = g.first_parent(tree.path, already[0].commit)
        return ApplyResult(worktree, branch, first_parent, already[-1].commit, already, True,
                           (f"series is already applied in {tree.path} (HEAD)",),
                           command_line(["git", "-C", str(tree.path), "log", "--oneline",
                                         f"-{len(already)}"]), series, prepared)
    base, notes = choose_base(tree, series, onto)
    ensure_worktree(tree, worktree, base)
    notes.extend(prepared.notes)
    reproducer = (f"{command_line(prepared.command)} < {prepared.stream} && "
                  f"{command_line((*g.AM_ARGS, str(prepared.mbx)), worktree)}")
    am_output = git_am(worktree, series, prepared.mbx, base)
    notes.extend(WHITESPACE_RE.findall(am_output))
    head = g.head_commit(worktree)
    g.set_branch(tree.path, branch, head)
    commits = g.commits_between(worktree, base, head)
    patches = tuple(AppliedPatch(p.index, p.subject, c)
                    for p, c in zip(series.patches, commits, strict=False))
    return ApplyResult(worktree, branch, base, head, patches, False, tuple(notes), reproducer,
                       series, prepared)


def b4_dir(cache: Path, series_name: str, revision: str) -> Path:
    """Where b4's output for one revision lives (kept: its .mbx is what git am applied)."""
    return cache / "b4" / f"{series_name}-{revision}"


def git_am(worktree: Path, series: Series, mbx: Path, base: str) -> str:
    """git am in the worktree; on failure abort, reset to BASE and explain which hunk failed."""
    applied = g.am(worktree, mbx, APPLY_IDENTITY)
    if applied.returncode == 0:
        return applied.output
    checkout(worktree, base)
    raise KseriesError(describe_am_failure(series, applied.output))


def describe_am_failure(series: Series, output: str) -> str:
    """One line: which patch, which file, which hunk did not apply."""
    failed_at = FAILED_AT_RE.search(output)
    applying = APPLYING_RE.findall(output)
    if failed_at is None and not applying:
        return f"git am failed before applying any patch: {last_line(output)}"
    number = int(failed_at.group(1)) if failed_at else len(applying)
    patch = next((p for p in series.patches if p.index == number), None)
    subject = patch.subject if patch else (applying[-1] if applying else "?")
    total = len(series.patches)
    where = ""
    if hunk := PATCH_FAILED_RE.search(output):
        path, line = hunk.group(1), int(hunk.group(2))
        header = hunk_header(patch.diff if patch else "", path, line)
        where = f" ({path}, hunk {header})" if header else f" ({path}:{line})"
    elif other := NOT_APPLY_RE.search(output):
        where = f" ({other.group(1)}: {other.group(2)})"
    return (f"patch {number}/{total} '{subject}' does not apply{where}; nothing was applied "
            "(check the base, or rebase the series)")


def hunk_header(diff: str, path: str, line: int) -> str | None:
    """The '@@ -l,n +l,n @@' header of PATH's hunk that starts at old LINE."""
    in_file = False
    for text in diff.splitlines():
        if text.startswith("diff --git "):
            in_file = text.endswith(f" b/{path}")
        elif (in_file and text.startswith(f"@@ -{line},")) or (in_file and text.startswith(
                f"@@ -{line} ")):
            return text.split(" @@")[0] + " @@"
    return None


def remove_worktree(tree: Tree, worktree: Path) -> None:
    """Drop our scratch worktree (tests and `kseries apply --clean`)."""
    g.remove_worktree(tree.path, worktree)
    if worktree.exists():
        shutil.rmtree(worktree)
    g.prune_worktrees(tree.path)
