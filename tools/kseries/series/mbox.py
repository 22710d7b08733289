"""Reading a mailbox series: its patches, cover letter, base-commit and the paths it touches."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kseries.core.errors import KseriesError
from kseries.series.thread import Mail, read_thread

BASE_COMMIT_RE = re.compile(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", re.MULTILINE)
CHANGE_ID_RE = re.compile(r"^change-id:\s*(\S+)\s*$", re.MULTILINE)
PATH_LINE_RES = (
    re.compile(r"^diff --git a/(\S+) b/(\S+)$"),
    re.compile(r"^(?:---|\+\+\+) (?:[ab]/)?(\S+)"),
    re.compile(r"^(?:rename|copy) (?:from|to) (\S+)$"),
)


@dataclass(frozen=True)
class Patch:
    index: int
    total: int
    subject: str
    body: str
    paths: tuple[str, ...]
    message_id: str = ""
    author: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()

    @property
    def diff(self) -> str:
        start = self.body.find("\ndiff --git ")
        return self.body[start + 1:] if start >= 0 else ""


@dataclass(frozen=True)
class Series:
    path: Path
    cover_subject: str | None
    cover_body: str | None
    patches: tuple[Patch, ...]
    cover_to: tuple[str, ...] = ()
    cover_cc: tuple[str, ...] = ()

    @property
    def base_commit(self) -> str | None:
        for text in (self.cover_body or "", *(p.body for p in self.patches)):
            if found := BASE_COMMIT_RE.search(text):
                return found.group(1)
        return None

    @property
    def change_id(self) -> str | None:
        found = CHANGE_ID_RE.search(self.cover_body or "")
        return found.group(1) if found else None

    @property
    def touched_paths(self) -> tuple[str, ...]:
        return tuple(sorted({path for p in self.patches for path in p.paths}))


def read_series(path: Path) -> Series:
    """Parse PATH, a series mbox as `kseries export` or `git format-patch` writes it: the
    messages that carry a diff and are no reply are its patches, the first other message its
    cover letter. A list thread goes through b4 instead (series/b4am.py)."""
    thread = read_thread(path)
    patches = [m for m in thread.mails if m.has_diff and not m.reply]
    if not patches:
        raise KseriesError(f"{path} holds {len(thread.mails)} messages but no patch "
                           "(no 'diff --git')")
    cover = next((m for m in thread.mails if not m.has_diff and not m.reply), None)
    return series_of(path, cover, patches)


def series_of(path: Path, cover: Mail | None, mails: list[Mail],
              originals: dict[str, Mail] | None = None) -> Series:
    """A Series of MAILS (the patches, in any order) and COVER; the recipients come from
    ORIGINALS by Message-Id when given (b4's output keeps no To/Cc)."""
    known = originals or {}

    def sent(mail: Mail) -> Mail:
        return known.get(mail.message_id, mail)

    patches = [_patch(mail, sent(mail), position) for position, mail in enumerate(mails, 1)]
    _check_paths(path, patches)
    patches.sort(key=lambda p: p.index)
    cover_sent = sent(cover) if cover else None
    return Series(path, cover.subject if cover else None,
                  cover.body if cover else None, tuple(patches),
                  cover_to=cover_sent.to if cover_sent else (),
                  cover_cc=cover_sent.cc if cover_sent else ())


def _patch(mail: Mail, sent: Mail, position: int) -> Patch:
    index, total = (mail.counter, mail.expected) if mail.is_patch else (position, 0)
    title = re.sub(r"^\s*\[[^\]]*\]\s*", "", mail.subject)
    body = mail.body
    return Patch(index, total, title, body, tuple(sorted(_paths(body))),
                 message_id=mail.message_id, author=mail.sender, to=sent.to, cc=sent.cc)


def _paths(body: str) -> set[str]:
    paths: set[str] = set()
    for line in body.splitlines():
        for pattern in PATH_LINE_RES:
            if match := pattern.match(line):
                paths.update(p for p in match.groups() if p != "/dev/null")
    return paths


def _check_paths(path: Path, patches: list[Patch]) -> None:
    for patch in patches:
        for name in patch.paths:
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or ".git" in parts:
                raise KseriesError(f"{path}: patch {patch.index} '{patch.subject}' touches unsafe "
                                   f"path '{name}' (outside the tree); refusing to apply")
