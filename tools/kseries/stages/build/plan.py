"""Which files to compile: every .c file the series touches, and every file that calls a
function whose definition or prototype the series touches (git grep, confirmed as a call by
ctokens)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from unidiff.patch import PatchSet

from kseries.core import git as g
from kseries.kernel import kbuild
from kseries.kernel.ccalls import find_calls, signatures_in
from kseries.kernel.ctokens import function_spans, tokenize
from kseries.series.apply import ApplyResult

NOT_KERNEL_OBJECTS = ("tools/", "scripts/", "Documentation/", "usr/")

@dataclass(frozen=True)
class FileChange:
    """One file of a diff and the line numbers it changes on each side (-U0)."""

    path: str
    old_path: str
    old_lines: frozenset[int]
    new_lines: frozenset[int]
    added: bool
    removed: bool


def diff_changes(worktree: Path, old: str, new: str) -> list[FileChange]:
    """The files changed between two commits, parsed with unidiff."""
    text = g.git(worktree, "diff", "--no-color", "--no-ext-diff", "-M", "-U0", old, new)
    changes = []
    for patched in PatchSet(text + "\n" if text else ""):
        old_lines = {line.source_line_no for hunk in patched for line in hunk
                     if line.is_removed and line.source_line_no}
        new_lines = {line.target_line_no for hunk in patched for line in hunk
                     if line.is_added and line.target_line_no}
        source = patched.source_file.removeprefix("a/")
        changes.append(FileChange(patched.path, source, frozenset(old_lines),
                                  frozenset(new_lines), patched.is_added_file,
                                  patched.is_removed_file))
    return changes


def _show(worktree: Path, commit: str, path: str) -> str:
    proc = g.run_git(worktree, "show", f"{commit}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else ""


def functions_at(text: str, lines: Iterable[int]) -> set[str]:
    """Functions (bodies, prototypes, function-like macros) that cover any of LINES."""
    wanted = sorted(set(lines))
    if not wanted or not text:
        return set()
    tokens = tokenize(text)
    spans = [(s.name, s.start_line, s.end_line) for s in function_spans(tokens)]
    spans += [(s.name, s.line, s.end_line) for s in signatures_in(tokens)]
    return {name for name, start, end in spans if any(start <= n <= end for n in wanted)}


def is_static(text: str, name: str) -> bool:
    """Whether NAME is defined static in TEXT (then only its own file can call it)."""
    return re.search(rf"\bstatic\b[^;{{}}()]*\b{re.escape(name)}\s*\(", text) is not None


def touched_functions(worktree: Path, base: str, head: str, changes: Sequence[FileChange]
                      ) -> dict[str, str]:
    """Function name -> file, for every non-static function whose definition or prototype
    (signature or body) the series changes; functions only static in a .c are left out."""
    touched: dict[str, str] = {}
    for change in changes:
        if not change.path.endswith((".c", ".h")):
            continue
        old = "" if change.added else _show(worktree, base, change.old_path)
        new = "" if change.removed else _show(worktree, head, change.path)
        names = functions_at(old, change.old_lines) | functions_at(new, change.new_lines)
        for name in sorted(names):
            if change.path.endswith(".c") and (is_static(new, name) or is_static(old, name)):
                continue
            touched.setdefault(name, change.path)
    return touched


def caller_files(worktree: Path, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Kernel .c files that call any of NAMES (git grep -w in the worktree, which is at the
    series' head, then confirmed as calls by ctokens: comments and mentions do not count)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    patterns = [arg for name in wanted for arg in ("-e", name)]
    proc = g.run_git(worktree, "grep", "-l", "-w", "-F", *patterns, "--", "*.c",
                     *(f":!{p}" for p in NOT_KERNEL_OBJECTS), check=False)
    found: dict[str, tuple[str, ...]] = {}
    for path in proc.stdout.splitlines():
        text = (worktree / path).read_text(errors="replace")
        calls = {s.name for s in find_calls(text, wanted, path) if s.kind in ("call",
                                                                             "macro_call")}
        if calls:
            found[path] = tuple(sorted(calls))
    return found


@dataclass(frozen=True)
class Target:
    """A source file to compile, and why (for a caller: the lines of its calls)."""

    source: str
    obj: str
    why: str
    calls: tuple[int, ...] = ()


@dataclass(frozen=True)
class Plan:
    targets: tuple[Target, ...]
    skipped: tuple[tuple[str, str], ...]
    functions: Mapping[str, str]
    headers: tuple[str, ...]
    patch_files: tuple[frozenset[str], ...]

    @property
    def sources(self) -> dict[str, str]:
        """Object -> source file."""
        return {t.obj: t.source for t in self.targets}


def cached_caller_files(cache: Path | None, worktree: Path, head: str,
                        names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """caller_files(), remembered per head commit and names in <cache>/callers/: finding
    the calls tokenizes every file git grep names (minutes on the whole tree), and every
    build of the same head (a second run, a per-arch job) asks the same question."""
    wanted = sorted(set(names))
    if cache is None:
        return caller_files(worktree, wanted)
    key = hashlib.sha1(json.dumps([head, wanted]).encode()).hexdigest()
    path = cache / "callers" / f"{key}.json"
    try:
        return {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        pass
    found = caller_files(worktree, wanted)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(found))
    os.replace(scratch, path)
    return found


def make_plan(worktree: Path, applied: ApplyResult, family: Sequence[str] = (),
              cache: Path | None = None) -> Plan:
    """Which files to compile: touched .c files, then the files that call a function whose
    definition or prototype the series touches; when that includes a function of the API
    FAMILY (series.toml), the callers of every function of the family."""
    changes = diff_changes(worktree, applied.base, applied.head)
    patch_files = []
    previous = applied.base
    for patch in applied.patches:
        patch_files.append(frozenset(p for c in diff_changes(worktree, previous, patch.commit)
                                     for p in {c.path, c.old_path}))
        previous = patch.commit
    functions = touched_functions(worktree, applied.base, applied.head, changes)
    wanted = dict(functions)
    if set(functions) & set(family):
        wanted.update({name: "api family" for name in family if name not in functions})
    found = cached_caller_files(cache, worktree, applied.head, wanted)
    targets: dict[str, Target] = {}
    skipped: list[tuple[str, str]] = []
    for change in changes:
        if change.removed or not change.path.endswith((".c", ".S")):
            continue
        if change.path.startswith(NOT_KERNEL_OBJECTS):
            skipped.append((change.path, "not a kernel object (user-space tool or script)"))
            continue
        patches = [str(i + 1) for i, files in enumerate(patch_files) if change.path in files]
        targets[change.path] = Target(change.path, kbuild.object_for(change.path),
                                      f"touched by patch {', '.join(patches)}")
    for path in sorted(found):
        if path not in targets and path.endswith(".c"):
            names = ", ".join(f"{n}()" for n in found[path])
            text = (worktree / path).read_text(errors="replace")
            lines = tuple(sorted({c.line for c in find_calls(text, found[path], path)
                                  if c.kind in ("call", "macro_call")}))
            targets[path] = Target(path, kbuild.object_for(path), f"calls {names}", lines)
    headers = tuple(c.path for c in changes if c.path.endswith(".h") and not c.removed)
    return Plan(tuple(targets.values()), tuple(skipped), wanted, headers, tuple(patch_files))
