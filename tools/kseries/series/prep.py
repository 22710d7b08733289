"""An edit branch as a `b4 prep` branch, so b4's own tools (prep --edit-cover, trailers -u,
send -o) work on it, with the cover letter and change-id of the revision it was imported from.

b4 keeps a prep branch's cover letter either in an empty commit at the start of the series
(strategy "commit", b4's default) or in the branch description (strategy
"branch-description"), with its tracking data (change-id, revision, base branch) as JSON in
branch.B.b4-tracking. kseries uses the branch description: enrolling then rewrites no
commit, so an imported branch keeps the commit ids import gives (reproducible), export needs
no cover commit to skip, and export already reads the cover from the branch description.
The price: b4 finds the start of the series as the fork point with a base *branch*, so the
tree needs a branch that holds the base but none of the series (the default tree's "base").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import b4

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.core.proc import last_line, run
from kseries.series.thread import Mail, read_thread

STRATEGY = "branch-description"
SCRATCH_PREFIX = "kseries/"  # kseries.series.apply.scratch_branch()
# The blurb of a format-patch cover letter ends where git's shortlog starts ("Name (4):").
SHORTLOG_RE = re.compile(r"\n\n[^\n]+ \(\d+\):\n  ")
CHANGE_ID_RE = re.compile(r"^change-id: (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class B4Run:
    stdout: str
    output: str  # stdout and stderr (b4 logs to stderr)


@dataclass(frozen=True)
class PrepInfo:
    """What `b4 prep --show-info` says about an enrolled branch."""

    branch: str
    revision: int
    change_id: str
    base_commit: str
    start_commit: str
    end_commit: str


def run_b4(worktree: Path, identity: tuple[str, str], *args: str,
            stdin_file: Path | None = None) -> B4Run:
    """`b4 --offline-mode --no-interactive ARGS` in WORKTREE as IDENTITY (b4 reads user.name
    and user.email to sign off, and re-stamps commits it rewrites with them), with git's
    hermetic environment; a failure is one line naming b4's complaint."""
    env = g.hermetic_env({"user.name": identity[0], "user.email": identity[1]})
    proc = run(["b4", "--offline-mode", "--no-interactive", *args], cwd=worktree, env=env,
               stdin_file=stdin_file, check=False)
    ran = B4Run(proc.stdout, proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise KseriesError(f"b4 {' '.join(args[:2])} in {worktree} failed: "
                           f"{b4_problem(ran.output)}")
    return ran


def b4_problem(output: str) -> str:
    """The first thing b4 called CRITICAL (its reason), else its last line."""
    critical = [line.strip() for line in output.splitlines() if "CRITICAL:" in line]
    return critical[0].split("CRITICAL:", 1)[1].strip() if critical else last_line(output)


def tracking_key(branch: str) -> str:
    return f"branch.{branch}.b4-tracking"


def is_enrolled(repo: Path, branch: str) -> bool:
    return bool(g.config_value(repo, tracking_key(branch)).strip())


def enroll(worktree: Path, branch: str, base_branch: str, cover: str, change_id: str,
           revision: int) -> PrepInfo:
    """Make BRANCH (checked out in WORKTREE, its base the tip of BASE_BRANCH) a b4 prep
    branch whose cover letter is COVER, with CHANGE_ID and REVISION as b4 tracks them."""
    identity = g.committer(worktree, branch)
    # b4 reads the strategy from the branch's config before anything else, and with
    # "branch-description" it keeps a description it finds as the cover letter.
    g.set_config(worktree, f"branch.{branch}.b4-prep-cover-strategy", STRATEGY)
    g.set_config(worktree, f"branch.{branch}.description", cover)
    # An old enrollment (import --force) would make b4 refuse ("already a prep branch").
    g.unset_config(worktree, tracking_key(branch))
    run_b4(worktree, identity, "prep", "--enroll", base_branch)
    run_b4(worktree, identity, "prep", "--force-revision", str(revision))
    set_change_id(worktree, branch, change_id)
    info = prep_info(worktree, branch)
    if (info.change_id, info.revision) != (change_id, revision):
        raise KseriesError(f"b4 tracks {branch} as {info.change_id} v{info.revision}, not "
                           f"{change_id} v{revision}")
    return info


def set_change_id(repo: Path, branch: str, change_id: str) -> None:
    """b4 makes up a change-id when it enrolls a branch and has no option to set one: put
    the revision's own in its tracking data, so b4 send writes the same change-id trailer."""
    tracking: dict[str, Any] = json.loads(g.config_value(repo, tracking_key(branch)))
    tracking["series"]["change-id"] = change_id
    g.set_config(repo, tracking_key(branch), json.dumps(tracking))


def prep_info(worktree: Path, branch: str) -> PrepInfo:
    """b4's own view of BRANCH: its revision, change-id and series range."""
    ran = run_b4(worktree, g.committer(worktree, branch), "prep", "--show-info", f"{branch}:")
    values = dict(line.split(": ", 1) for line in ran.stdout.splitlines() if ": " in line)
    try:
        return PrepInfo(branch, int(values["revision"]), values["change-id"],
                        values["base-commit"], values["start-commit"], values["end-commit"])
    except (KeyError, ValueError):
        raise KseriesError(f"b4 prep --show-info {branch}: says nothing about the "
                           f"series: {last_line(ran.output)}") from None


def choose_base_branch(repo: Path, base: str, head: str, branch: str) -> str:
    """A branch of REPO b4 can take as the base of BRANCH (to be at HEAD): it holds BASE,
    and HEAD forks from it exactly at BASE, so b4's series is BASE..BRANCH. The checkout's
    own branch first, then by name; never kseries' scratch branches (they hold series)."""
    current = g.current_branch(repo)
    candidates = [b for b in g.branches_containing(repo, base)
                  if b != branch and not b.startswith(SCRATCH_PREFIX)]
    for candidate in sorted(candidates, key=lambda b: (b != current, b)):
        if g.merge_base(repo, candidate, head) == base:
            return candidate
    raise KseriesError(f"no branch of {repo} holds the base {base[:12]} without the series, "
                       f"so b4 prep cannot enroll {branch}; make one ('git -C {repo} branch "
                       f"kseries-base {base[:12]}') or pass --no-enroll")


def cover_of_revision(mbox: Path, cover_file: Path) -> str:
    """The revision's cover letter as b4 prep keeps it (subject line, blank line, body):
    COVER_FILE (patches/vN-cover.txt) when there is one, else the cover letter of MBOX
    without git's shortlog, diffstat and trailers."""
    if cover_file.is_file():
        return cover_file.read_text()
    cover = cover_mail(mbox)
    subject = b4.LoreSubject(cover.subject).subject
    blurb = SHORTLOG_RE.split(cover.body, maxsplit=1)[0]
    return f"{subject}\n\n{blurb.strip()}\n"


def change_id_of_revision(mbox: Path, default: str) -> str:
    """The change-id: trailer of MBOX's cover letter (export writes one), else DEFAULT."""
    found = CHANGE_ID_RE.search(cover_mail(mbox).body)
    return found.group(1) if found else default


def cover_mail(mbox: Path) -> Mail:
    covers = [m for m in read_thread(mbox).mails if m.counter == 0 and not m.reply]
    if not covers:
        raise KseriesError(f"{mbox} has no cover letter (patch 0/N)")
    return covers[0]

