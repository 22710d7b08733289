"""The patches of the reported series: index, subject, commit, Message-ID and patch file.

report.json names every patch (the apply stage's "patch N" checks: "<commit> <subject>";
the checks stage's per-patch data: full commit and subject) but holds no Message-IDs; those
are read from the thread the apply stage names (data.thread), when it is still on disk, and
only kept for a patch whose subject matches. The patch files are the ones the checks stage
keeps beside its logs (logs/checks/patch-N.patch, `git format-patch -1` of the applied
commit): the exact text of what was applied, in the format `git apply` takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kseries.core.errors import KseriesError
from kseries.export import ExportSettings
from kseries.export.common import Json, items, log_file, stage
from kseries.series.thread import Mail, read_thread

PREFIX_RE = re.compile(r"^\s*(\[[^\]]*\]\s*)+")


@dataclass(frozen=True)
class PatchInfo:
    index: int
    subject: str = ""
    commit: str | None = None
    message_id: str | None = None
    file: Path | None = None


@dataclass(frozen=True)
class SeriesInfo:
    patches: tuple[PatchInfo, ...]
    cover_message_id: str | None = None
    cover_subject: str | None = None

    def patch(self, index: int) -> PatchInfo:
        return next((p for p in self.patches if p.index == index), PatchInfo(index))

    @property
    def files(self) -> tuple[Path, ...] | None:
        """Every patch's file, in order; None unless each one is there."""
        found = tuple(p.file for p in self.patches if p.file is not None)
        return found if self.patches and len(found) == len(self.patches) else None


def series_info(report: Json, settings: ExportSettings) -> SeriesInfo:
    known = from_apply(report)
    for index, (subject, commit) in from_checks(report).items():
        known[index] = (subject or known.get(index, ("", None))[0], commit)
    mails = thread_mails(report)
    files = patch_files(report, settings)
    patches = tuple(PatchInfo(index, subject, commit, matching_id(mails, index, subject),
                              files.get(index))
                    for index, (subject, commit) in sorted(known.items()))
    cover = mails.get(0)
    return SeriesInfo(patches, cover.message_id if cover and real_id(cover) else None,
                      cover.subject if cover else None)


def from_apply(report: Json) -> dict[int, tuple[str, str | None]]:
    """index -> (subject, abbreviated commit) from the apply stage's "patch N" checks."""
    entry = stage(report, "apply")
    found: dict[int, tuple[str, str | None]] = {}
    for item in items(entry) if entry is not None else []:
        if item.patch is None or item.rule is not None:
            continue  # trailers and mbox notes name a patch too, but are not the patch
        commit, _, subject = item.summary.partition(" ")
        found[item.patch] = (subject, commit or None)
    return found


def from_checks(report: Json) -> dict[int, tuple[str, str | None]]:
    """index -> (subject, full commit) from the checks stage's per-patch data."""
    entry = stage(report, "checks")
    found: dict[int, tuple[str, str | None]] = {}
    for item in items(entry) if entry is not None else []:
        index, data = item.patch, item.data
        if index is not None and isinstance(data.get("commit"), str):
            found[index] = (str(data.get("subject") or ""), str(data["commit"]))
    return found


def patch_files(report: Json, settings: ExportSettings) -> dict[int, Path]:
    """index -> logs/checks/patch-N.patch, where the checks stage wrote one."""
    entry = stage(report, "checks")
    dirs = {path.parent for item in (items(entry) if entry is not None else [])
            if (path := log_file(settings, item.check.get("log"))) is not None}
    found: dict[int, Path] = {}
    for folder in sorted(dirs):
        for path in folder.glob("patch-*.patch"):
            number = path.stem.removeprefix("patch-")
            if number.isdigit():
                found.setdefault(int(number), path)
    return found


def thread_mails(report: Json) -> dict[int, Mail]:
    """counter -> the mail of the applied revision (0: the cover letter), from the thread
    named by the apply stage; empty when there is none to read."""
    entry = stage(report, "apply")
    data = entry.get("data") if entry is not None else None
    if not isinstance(data, Mapping) or not isinstance(data.get("thread"), str):
        return {}
    try:
        thread = read_thread(Path(data["thread"]))
    except (KseriesError, OSError, ValueError):
        return {}
    revision = data.get("thread_revision")
    mine = [m for m in thread.mails if not m.reply and m.is_patch
            and (not isinstance(revision, int) or m.revision == revision)]
    found: dict[int, Mail] = {}
    for mail in mine:
        if mail.counter == 0 and mail.has_diff:
            continue
        found.setdefault(mail.counter, mail)
    return found


def matching_id(mails: Mapping[int, Mail], index: int, subject: str) -> str | None:
    mail = mails.get(index)
    if mail is None or not real_id(mail):
        return None
    title = PREFIX_RE.sub("", mail.subject).strip()
    return mail.message_id if not subject or title == subject.strip() else None


def real_id(mail: Mail) -> bool:
    """A Message-Id the mail carried (read_thread makes one up for a mail without)."""
    made_up = mail.message_id.startswith("kseries.") and mail.message_id.endswith("@localhost")
    return bool(mail.message_id) and not made_up
