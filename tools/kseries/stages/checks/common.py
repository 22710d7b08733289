"""What every rule of the checks stage works on (Job), and the helpers they share.

Below every rule module, so each rule imports it and none imports another rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.core.proc import command_line
from kseries.core.report import Check, Status
from kseries.kernel.maintainers import script_env
from kseries.series.apply import AppliedPatch
from kseries.series.mbox import Series

# Bounds for a hung script, not estimates: each takes seconds on one patch or file.
SCRIPT_TIMEOUT_S = 300.0
SOURCE_SUFFIXES = (".c", ".h")


@dataclass(frozen=True)
class Commit:
    """An applied commit as the rules read it: author and full message."""

    name: str
    email: str
    message: str


@dataclass(frozen=True)
class Job:
    """One run of the checks: where the commits and the tree's scripts are, and the logs.

    REPO is the scratch worktree the apply stage made (the user's tree is never touched);
    HOME is an empty directory given to the scripts as $HOME, so a user's ~/.checkpatch.conf
    or ~/.get_maintainer.conf cannot change their answer."""

    repo: Path
    base: str
    head: str
    patches: tuple[AppliedPatch, ...]
    series: Series | None
    logs: Path
    home: Path
    _commits: dict[str, Commit] = field(default_factory=dict, compare=False)

    def script(self, name: str) -> Path:
        return self.repo / "scripts" / name

    def env(self) -> dict[str, str]:
        return script_env(self.home)

    def log(self, rule: str, step: str) -> Path:
        path = self.logs / f"{rule}-{slug(step)}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self, sha: str) -> Commit:
        """Author and message of SHA (asked once per commit: every per-patch rule reads it)."""
        if sha not in self._commits:
            name, email, message = g.git(self.repo, "log", "-1", "--format=%an%x00%ae%x00%B",
                                         sha).split("\0", 2)
            self._commits[sha] = Commit(name, email, message)
        return self._commits[sha]

    def patch_file(self, patch: AppliedPatch) -> Path:
        """PATCH as `git format-patch -1` mails it (what checkpatch and get_maintainer read),
        kept beside the logs so every reproducer can be pasted as is."""
        path = self.logs / f"patch-{patch.index}.patch"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(g.format_patch(self.repo, "-1", patch.commit) + "\n")
        return path

    def reproducer(self, args: list[str], patch: AppliedPatch | None = None) -> str:
        text = command_line(args, self.repo)
        return f"{text} < {self.patch_file(patch)}" if patch is not None else text


def slug(text: str) -> str:
    """TEXT as a file-name part: 'patch 2' -> 'patch-2', 'mm/a.c' -> 'mm-a.c'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "series"


def rule_check(rule: str, step: str, status: Status, summary: str, log: Path, *,
               name: str | None = None, data: dict[str, Any] | None = None,
               reproducer: str | None = None, duration_s: float = 0.0) -> Check:
    """The check of RULE on STEP (a patch, a file, the series), named 'RULE STEP'."""
    return Check(name=name or f"{rule} {step}", status=status, summary=summary, log=str(log),
                 step=step, rule=rule, reproducer=reproducer, duration_s=duration_s,
                 data=data or {})


def patch_check(rule: str, patch: AppliedPatch, status: Status, summary: str, log: Path, *,
                data: dict[str, Any] | None = None, reproducer: str | None = None,
                duration_s: float = 0.0) -> Check:
    """The check of RULE on PATCH; its data says which patch (the notes table reads it)."""
    return rule_check(rule, f"patch {patch.index}", status, summary, log,
                      reproducer=reproducer, duration_s=duration_s,
                      data={"patch": patch.index, "subject": patch.subject,
                            "commit": patch.commit, **(data or {})})


def missing_script(job: Job, name: str) -> str:
    """Why a rule cannot run, or '' when the tree has script NAME."""
    if job.script(name).is_file():
        return ""
    return f"the tree has no scripts/{name}; the rule needs the kernel tree's own copy"


def text_at(repo: Path, rev: str, path: str) -> str | None:
    """PATH as of REV, or None when it does not exist there (added or deleted)."""
    try:
        return g.file_at(repo, rev, path)
    except KseriesError:
        return None


def write_log(path: Path, lines: list[str]) -> Path:
    """A log for a rule that runs no program: what it read and what it decided."""
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
