"""A mail thread as a maintainer has it, and the same thread as the mboxrd stream b4 reads.

Input comes as an mbox file (saved from a mail client, `b4 mbox`, a patchwork download or
`git format-patch --stdout`), a Maildir, or a folder of .eml/.patch files. Every form ends
as Mail objects holding the message bytes as stored, so b4 sees exactly what was sent
(quoted-printable, base64 and CRLF bodies included).

Why kseries hands b4 a stream and not the file: b4 reads a local mbox path with Python's
mailbox module, which cuts a message at any body line starting with "From " ("From the
spec: ..."). On stdin b4 splits as mboxrd (at real separators, one level of ">From"
escapes undone), so kseries writes mboxrd: every body line matching ">*From " gets one
more ">", and b4 gets back the original line.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.policy
import email.utils
import hashlib
import mailbox
import re
from dataclasses import dataclass, replace
from pathlib import Path

import b4
from liblore.utils import split_mbox_as_bytes

from kseries.core.errors import KseriesError

# A git-style mbox separator: sender, then a ctime date ("Mon Sep 17 00:00:00 2001").
# A body line such as "From the spec: ..." has no such date and stays in its message.
SEPARATOR_RE = re.compile(rb"^From \S+ +\w{3} \w{3} [ \d]?\d \d\d:\d\d:\d\d \d{4}\r?$",
                          re.MULTILINE)
# b4, lore and public-inbox write this separator, and their files are mboxrd.
MBOXRD_SEPARATOR = b"From mboxrd@z Thu Jan  1 00:00:00 1970"
ESCAPE_RE = re.compile(rb"^(>*From )", re.MULTILINE)
MESSAGE_FILE_SUFFIXES = (".eml", ".patch", ".mbox", ".mbx", ".txt")
DIFF_RE = re.compile(r"^diff --git a/", re.MULTILINE)


@dataclass(frozen=True)
class Mail:
    """One message of the thread: its bytes as stored and what b4 makes of its subject."""

    raw: bytes
    subject: str
    message_id: str
    in_reply_to: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply: bool
    revision: int
    counter: int
    expected: int
    is_patch: bool
    body: str

    @property
    def has_diff(self) -> bool:
        return DIFF_RE.search(self.body) is not None

    @property
    def number(self) -> str:
        return f"{self.counter}/{self.expected}"

    @property
    def label(self) -> str:
        return f"<{self.message_id}> '{self.subject}'"


@dataclass(frozen=True)
class Thread:
    source: Path
    mails: tuple[Mail, ...]

    @property
    def unthreaded(self) -> int:
        """How many messages came without a Message-Id (thread_locally gave them one)."""
        return sum(not _has_header(m.raw, b"Message-Id") for m in self.mails)

    def by_id(self) -> dict[str, Mail]:
        return {mail.message_id: mail for mail in self.mails}


def read_thread(source: Path) -> Thread:
    """The thread in SOURCE (an mbox or message file, a Maildir, or a folder of messages)."""
    if source.is_dir():
        raws = maildir_messages(source) if is_maildir(source) else folder_messages(source)
    elif source.is_file():
        raws = file_messages(source)
    else:
        raise KseriesError(f"mbox {source} does not exist; pass --mbox FILE|DIR|- or "
                           "--revision vN")
    if not raws:
        raise KseriesError(f"{source} holds no mail messages (expected an mbox, a Maildir or "
                           ".eml/.patch files)")
    mails = [mail_of(raw, number) for number, raw in enumerate(raws)]
    return Thread(source, tuple(thread_locally(mails)))


def file_messages(path: Path) -> list[bytes]:
    """The messages of one file: an mbox (mboxrd if b4 or lore wrote it) or a bare message."""
    data = path.read_bytes()
    if not data.strip():
        raise KseriesError(f"{path} is empty; save the whole thread (e.g. b4 mbox MSGID)")
    if data.startswith(MBOXRD_SEPARATOR):
        return [raw for raw in split_mbox_as_bytes(data) if raw.strip()]
    starts = [m.start() for m in SEPARATOR_RE.finditer(data)]
    if not starts or data[:starts[0]].strip():
        # A message without an mbox separator: one .eml or a patch written by hand.
        return [data] if b":" in data.split(b"\n", 1)[0] else []
    ends = [*starts[1:], len(data)]
    return [data[a:b].split(b"\n", 1)[1] for a, b in zip(starts, ends, strict=True)]


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def maildir_messages(path: Path) -> list[bytes]:
    folder = mailbox.Maildir(path, factory=None, create=False)
    return [folder.get_bytes(key) for key in sorted(folder.keys())]


def folder_messages(path: Path) -> list[bytes]:
    """Every message of every .eml/.patch/... file in PATH, in patch-number order (then by
    file name), as a folder of `git format-patch -o` files or saved mails is meant."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in MESSAGE_FILE_SUFFIXES)
    raws = [raw for file in files for raw in file_messages(file)]
    return sorted(raws, key=lambda raw: _subject_order(raw))


def _subject_order(raw: bytes) -> tuple[int, int]:
    subject = b4.LoreSubject(_decoded(parse(raw).get("Subject", "")))
    return (1 if subject.reply else 0, subject.counter)


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _decoded(value: str) -> str:
    text = str(email.header.make_header(email.header.decode_header(str(value))))
    return " ".join(text.split())


def _addresses(message: email.message.Message, name: str) -> tuple[str, ...]:
    pairs = email.utils.getaddresses([_decoded(v) for v in message.get_all(name, [])])
    return tuple(email.utils.formataddr(pair) for pair in pairs if pair[1])


def _message_id(value: str | None) -> str:
    found = re.search(r"<([^>]+)>", value or "")
    return found.group(1) if found else (value or "").strip()


def body_text(message: email.message.Message) -> str:
    """The text/plain body, transfer encoding undone."""
    part = next((p for p in message.walk() if p.get_content_type() == "text/plain"), None)
    payload = part.get_payload(decode=True) if part is not None else b""
    if not isinstance(payload, bytes):
        return ""
    charset = (part.get_content_charset() if part is not None else None) or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def mail_of(raw: bytes, number: int) -> Mail:
    message = parse(raw)
    subject = _decoded(message.get("Subject", ""))
    parsed = b4.LoreSubject(subject)
    prefixes = [p.upper() for p in parsed.prefixes]
    body = body_text(message)
    return Mail(raw=raw, subject=subject,
                message_id=_message_id(message.get("Message-Id")) or
                f"kseries.{number}.{hashlib.sha1(raw).hexdigest()[:12]}@localhost",
                in_reply_to=_message_id(message.get("In-Reply-To")),
                sender=_decoded(message.get("From", "")),
                to=_addresses(message, "To"), cc=_addresses(message, "Cc"),
                reply=bool(parsed.reply) or subject.lower().startswith("re:"),
                revision=int(parsed.revision), counter=int(parsed.counter),
                expected=int(parsed.expected), is_patch="PATCH" in prefixes, body=body)


def thread_locally(mails: list[Mail]) -> list[Mail]:
    """`git format-patch` without --thread writes no Message-Id and no In-Reply-To, and b4
    cannot thread such mail: a message without a parent hangs under the first message, as
    `git format-patch --thread` would have written it."""
    if not mails:
        return mails
    first = mails[0].message_id
    threaded = [mails[0]]
    for mail in mails[1:]:
        if not mail.in_reply_to and not _has_header(mail.raw, b"References"):
            mail = replace(mail, in_reply_to=first)
        threaded.append(mail)
    return threaded


def _has_header(raw: bytes, name: bytes) -> bool:
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    return re.search(rb"^" + name + rb":", head, re.IGNORECASE | re.MULTILINE) is not None


def to_mboxrd(thread: Thread) -> bytes:
    """THREAD as the mboxrd stream b4 reads on stdin (see the module docstring), with the
    Message-Id and In-Reply-To headers thread_locally() decided added where missing."""
    out = bytearray()
    for mail in thread.mails:
        head, sep, body = _split_head(mail.raw)
        added = b""
        if not _has_header(mail.raw, b"Message-Id"):
            added += f"Message-Id: <{mail.message_id}>\n".encode()
        if mail.in_reply_to and not _has_header(mail.raw, b"In-Reply-To"):
            added += (f"In-Reply-To: <{mail.in_reply_to}>\n"
                      f"References: <{mail.in_reply_to}>\n").encode()
        out += MBOXRD_SEPARATOR + b"\n" + added + head + sep + ESCAPE_RE.sub(rb">\1", body)
        if not out.endswith(b"\n"):
            out += b"\n"
    return bytes(out)


def _split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    found = re.search(rb"\r?\n\r?\n", raw)
    if found is None:
        return raw, b"", b""
    return raw[:found.start()], raw[found.start():found.end()], raw[found.end():]
