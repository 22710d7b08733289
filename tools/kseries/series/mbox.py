"""Reading a mailbox series: its patches, cover letter, base-commit and the paths it touches."""

from __future__ import annotations

import email
import email.header
import email.message
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kseries.core.errors import KseriesError

PATCH_SUBJECT_RE = re.compile(r"\[[^\]]*PATCH[^\]]*?(\d+)/(\d+)\s*\]", re.IGNORECASE)
BASE_COMMIT_RE = re.compile(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", re.MULTILINE)
CHANGE_ID_RE = re.compile(r"^change-id:\s*(\S+)\s*$", re.MULTILINE)
# An mbox "From " line: sender, then a ctime date (git writes "Mon Sep 17 00:00:00 2001").
MESSAGE_START_RE = re.compile(r"^From \S+ +\w{3} \w{3} [ \d]?\d \d\d:\d\d:\d\d \d{4}$",
                              re.MULTILINE)
MESSAGE_ID_RE = re.compile(r"^message-id:", re.IGNORECASE | re.MULTILINE)
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
    """Parse PATH as a patch series; every problem is a one-line KseriesError."""
    if not path.is_file():
        raise KseriesError(f"mbox {path} does not exist; pass --mbox FILE or --revision vN")
    if path.stat().st_size == 0:
        raise KseriesError(f"mbox {path} is empty; regenerate it with git format-patch --stdout")
    messages = [m for m in split_messages(path.read_bytes()) if m.get("Subject")]
    if not messages:
        raise KseriesError(f"{path} holds no mail messages: not an mbox (expected 'From ' lines "
                           "as written by git format-patch)")
    cover: tuple[str, str] | None = None
    patches: list[Patch] = []
    for message in messages:
        subject = _header(message.get("Subject", ""))
        body = _body(message)
        if "\ndiff --git " in f"\n{body}":
            patches.append(_patch(subject, body, len(patches) + 1))
        elif cover is None:
            cover = (subject, body)
    if not patches:
        raise KseriesError(f"{path} holds {len(messages)} messages but no patch (no 'diff --git')")
    _check_paths(path, patches)
    patches.sort(key=lambda p: p.index)
    return Series(path, cover[0] if cover else None, cover[1] if cover else None, tuple(patches))


def _patch(subject: str, body: str, position: int) -> Patch:
    numbered = PATCH_SUBJECT_RE.search(subject)
    index, total = (int(numbered.group(1)), int(numbered.group(2))) if numbered else (position, 0)
    title = re.sub(r"^\s*\[[^\]]*\]\s*", "", subject)
    return Patch(index, total, title, body, tuple(sorted(_paths(body))))


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


def _header(value: str) -> str:
    decoded = email.header.make_header(email.header.decode_header(value))
    return " ".join(str(decoded).split())


def split_messages(data: bytes) -> list[email.message.Message]:
    """The messages of an mbox, split only at real "From " lines (sender and date, as git
    writes them): a body line such as "From the spec: ..." stays in its message, where
    Python's mailbox module would cut the patch in two there."""
    text = data.decode("utf-8", errors="surrogateescape")
    return [email.message_from_bytes(chunk.partition("\n")[2].encode(
        "utf-8", errors="surrogateescape")) for chunk in message_chunks(text)]


def message_chunks(text: str) -> list[str]:
    """TEXT cut at its mbox From lines: one chunk per message, From line included (text
    before the first From line is not part of any message)."""
    starts = [m.start() for m in MESSAGE_START_RE.finditer(text)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=False)]


def _body(message: email.message.Message) -> str:
    if message.is_multipart():
        parts = [p for p in message.walk() if p.get_content_type() == "text/plain"]
        payload = parts[0].get_payload(decode=True) if parts else b""
    else:
        payload = message.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(message.get_content_charset() or "utf-8", errors="replace")


def threaded_text(path: Path) -> str | None:
    """PATH's text with local Message-Ids, when a message has none; else None.

    `git format-patch --stdout` without --thread writes no Message-Id, and b4 cannot
    thread (or even read) such a mailbox. Each message without one gets
    <kseries.N@localhost>, and every message after the first gets In-Reply-To and
    References pointing at the first (the cover letter when there is one), as
    `git format-patch --thread` would have written them."""
    text = path.read_text(errors="replace")
    chunks = message_chunks(text)
    if not chunks:
        return None
    headers = [chunk.split("\n\n", 1)[0] for chunk in chunks]
    if all(MESSAGE_ID_RE.search(h) for h in headers):
        return None
    first_id = ""
    out = [text[:len(text) - sum(map(len, chunks))]]
    for number, chunk in enumerate(chunks):
        from_line, _, rest = chunk.partition("\n")
        added = []
        found = MESSAGE_ID_RE.search(headers[number])
        message_id = _header_value(headers[number], found.start()) if found else \
            f"<kseries.{number}@localhost>"
        if not found:
            added.append(f"Message-Id: {message_id}")
        if number == 0:
            first_id = message_id
        elif not re.search(r"^in-reply-to:", headers[number], re.IGNORECASE | re.MULTILINE):
            added += [f"In-Reply-To: {first_id}", f"References: {first_id}"]
        out.append("\n".join([from_line, *added, rest]))
    return "".join(out)


def _header_value(headers: str, start: int) -> str:
    line = headers[start:].split("\n", 1)[0]
    return line.split(":", 1)[1].strip()
