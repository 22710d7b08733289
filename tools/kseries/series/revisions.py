"""Series upkeep across revisions: export a branch as vN.mbx, import vN for editing, diff vA vB.

git format-patch writes the mbox and git range-diff compares revisions (b4 diff does the
same); this module wires them to patches/ and series.toml, and makes the export
reproducible (zero commit hashes in From lines, Message-Ids derived from the change-id,
the cover letter dated like its newest patch).
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tomlkit
from tomlkit.exceptions import TOMLKitError

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.kernel.tree import Tree
from kseries.series.config import SeriesConfig

ChangeKind = Literal["unchanged", "changed", "new", "dropped"]
SUBJECT_PLACEHOLDER = "*** SUBJECT HERE ***"
BLURB_PLACEHOLDER = "*** BLURB HERE ***"
MESSAGE_ID_RE = re.compile(r"^Message-Id: <([^>]+)>$", re.MULTILINE | re.IGNORECASE)
DATE_RE = re.compile(r"^Date: (.+)$", re.MULTILINE)
# "1:  abc1234 = 1:  def5678 subject", "-:  ------- > 3:  abc subject", "3:  abc < -:  ---- s"
RANGE_DIFF_RE = re.compile(
    r"^\s*(-|\d+):\s+([0-9a-f]+|-+) ([=!<>]) +(-|\d+):\s+([0-9a-f]+|-+) (.*)$")


@dataclass(frozen=True)
class PatchChange:
    kind: ChangeKind
    old_index: int | None
    new_index: int | None
    subject: str
    interdiff: str


@dataclass(frozen=True)
class RevisionDiff:
    old: str
    new: str
    old_base: str
    new_base: str
    changes: tuple[PatchChange, ...]
    range_diff: str

    @property
    def same_base(self) -> bool:
        return self.old_base == self.new_base

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    def summary(self) -> str:
        parts = [f"{self.count(k)} {k}" for k in ("changed", "new", "dropped", "unchanged")]
        return f"{self.old} -> {self.new}: " + ", ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "old": self.old, "new": self.new, "old_base": self.old_base,
            "new_base": self.new_base, "same_base": self.same_base,
            "patches": [{"kind": c.kind, "old": c.old_index, "new": c.new_index,
                         "subject": c.subject, "interdiff": c.interdiff} for c in self.changes],
        }

    def format_text(self) -> str:
        lines = [self.summary()]
        if not self.same_base:
            lines.append(f"note: different bases ({self.old_base[:12]} vs {self.new_base[:12]}); "
                         "compared by patch content")
        for change in self.changes:
            where = f"{change.old_index or '-'} -> {change.new_index or '-'}"
            lines.append(f"  {change.kind:9} {where:8} {change.subject}")
            lines.extend(f"      {line}" for line in change.interdiff.splitlines())
        return "\n".join(lines)


def change_id(config: SeriesConfig) -> str:
    """The series' stable change-id (b4 style), the same for every revision."""
    digest = hashlib.sha1(config.name.encode()).hexdigest()[:12]
    return config.change_id or f"20200429-{config.name}-{digest}"


def revision_number(name: str) -> int:
    if not re.fullmatch(r"v[1-9][0-9]*", name):
        raise KseriesError(f"revision '{name}' must look like v2, v3, ...")
    return int(name[1:])


def export_mbox(repo: Path, base: str, branch: str, revision: str, cover_text: str,
                cid: str, sender_domain: str) -> str:
    """format-patch BASE..BRANCH as revision REVISION, cover letter filled in, reproducible."""
    if g.resolve_commit(repo, branch) is None:
        raise KseriesError(f"branch '{branch}' does not exist in {repo}")
    if not g.is_ancestor(repo, base, branch):
        raise KseriesError(f"branch '{branch}' is not on top of the base {base[:12]}; rebase it")
    if not g.commits_between(repo, base, branch):
        raise KseriesError(f"branch '{branch}' has no commits on top of the base {base[:12]}")
    # The branch's author sends the series (not whoever git config names on this machine).
    # kseries fills the cover letter itself: git would put a branch description (where b4
    # prep keeps an enrolled branch's cover letter) in place of the placeholders.
    raw = g.format_patch(repo, "--cover-letter", "--cover-from-description=none", "--thread",
                         "--zero-commit",
                         f"-v{revision_number(revision)}", f"--base={base}", f"{base}..{branch}",
                         sender=g.author(repo, branch))
    return stable_message_ids(fill_cover(raw + "\n", cover_text), cid, revision, sender_domain)


def fill_cover(mbox: str, cover_text: str) -> str:
    subject, _, body = cover_text.strip("\n").partition("\n")
    if not subject.strip() or not body.strip():
        raise KseriesError("cover letter text needs a subject line, a blank line and a body")
    filled = mbox.replace(SUBJECT_PLACEHOLDER, subject.strip(), 1)
    filled = filled.replace(BLURB_PLACEHOLDER, body.strip("\n"), 1)
    dates = [email.utils.parsedate_to_datetime(d) for d in DATE_RE.findall(filled)[1:]]
    newest = email.utils.format_datetime(max(dates)) if dates else None
    if newest:
        first = DATE_RE.search(filled)
        assert first is not None
        filled = filled[:first.start(1)] + newest + filled[first.end(1):]
    return filled


def stable_message_ids(mbox: str, cid: str, revision: str, domain: str) -> str:
    """Replace git's time-based Message-Ids with ones derived from the change-id and content."""
    for index, old in enumerate(MESSAGE_ID_RE.findall(mbox)):
        digest = hashlib.sha1(f"{cid}/{revision}/{index}".encode()).hexdigest()[:8]
        new = f"{cid}-{revision}-{index}-{digest}@{domain}"
        mbox = mbox.replace(f"<{old}>", f"<{new}>")
    return mbox


def add_trailer_after_base(mbox: str, trailer: str) -> str:
    """Put TRAILER (e.g. change-id: ...) right after the cover letter's base-commit line."""
    match = re.search(r"^base-commit: [0-9a-f]+$", mbox, re.MULTILINE)
    if match is None:
        raise KseriesError("format-patch wrote no base-commit line")
    return mbox[:match.end()] + f"\n{trailer}" + mbox[match.end():]


def record_revision(series_file: Path, revision: str, mbox_name: str) -> None:
    """Add [revisions.vN] to series.toml (keeping the old ones) and make it current.

    tomlkit edits the document in place: comments, order and layout survive, whatever
    the file looks like, and the old revisions' tables are left as they are.
    """
    try:
        document = tomlkit.parse(series_file.read_text())
    except TOMLKitError as err:
        raise KseriesError(f"{series_file} is not valid TOML ({err}); fix it and retry") from err
    series = document.get("series")
    if not isinstance(series, dict):
        raise KseriesError(f"{series_file} has no [series] table; add one with current = \"vN\"")
    revisions = document.get("revisions")
    if revisions is None:
        revisions = tomlkit.table(is_super_table=True)
        document["revisions"] = revisions
    if revision not in revisions:
        entry = tomlkit.table()
        entry["mbox"] = mbox_name
        revisions[revision] = entry
    series["current"] = revision
    series_file.write_text(tomlkit.dumps(document))


KIND_OF_MARK: dict[str, ChangeKind] = {"=": "unchanged", "!": "changed", "<": "dropped",
                                       ">": "new"}


def parse_range_diff(text: str) -> tuple[PatchChange, ...]:
    """Turn git range-diff output into one PatchChange per patch pair."""
    changes: list[PatchChange] = []
    for header, body in split_range_diff(text):
        old, _, mark, new, _, subject = header.groups()
        changes.append(PatchChange(
            kind=KIND_OF_MARK[mark],
            old_index=None if old == "-" else int(old),
            new_index=None if new == "-" else int(new),
            subject=subject,
            interdiff="\n".join(body).rstrip(),
        ))
    return tuple(changes)


def split_range_diff(text: str) -> list[tuple[re.Match[str], list[str]]]:
    """Pair each range-diff header line with the (dedented) interdiff lines below it."""
    pairs: list[tuple[re.Match[str], list[str]]] = []
    for line in text.splitlines():
        header = RANGE_DIFF_RE.match(line)
        if header is not None:
            pairs.append((header, []))
        elif pairs:
            pairs[-1][1].append(line[4:] if line.startswith("    ") else line)
    return pairs


def diff_revisions(tree: Tree, old_name: str, old: tuple[str, str], new_name: str,
                   new: tuple[str, str]) -> RevisionDiff:
    """Compare two applied revisions, each given as (base, head) commits in TREE's repo."""
    text = g.range_diff(tree.path, old, new)
    return RevisionDiff(old_name, new_name, old[0], new[0], parse_range_diff(text), text)
