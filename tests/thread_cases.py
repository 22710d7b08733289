"""Real-world thread inputs, made from patches/v2.mbx the way mail clients, lists and
reviewers change it. Shared by the unit tests (series model, errors) and the real-tree
tests (what ends up in the commits)."""

from __future__ import annotations

import base64
import mailbox
import quopri
import re
from pathlib import Path

from kseries.series.config import load_series

SEPARATOR_RE = re.compile(r"(?m)^(?=From \S+ +\w{3} \w{3} [ \d]?\d \d\d:\d\d:\d\d \d{4}$)")
REVIEWER = "Rev Iewer <reviewer@example.org>"
ACKER = "Ann Acker <acker@example.org>"
FIXUP_DIFF = ("diff --git a/mm/memory_hotplug.c b/mm/memory_hotplug.c\n"
              "--- a/mm/memory_hotplug.c\n+++ b/mm/memory_hotplug.c\n"
              "@@ -1,1 +1,1 @@\n-// SPDX-License-Identifier: GPL-2.0-only\n"
              "+// SPDX-License-Identifier: GPL-2.0\n")
FROM_LINES = ("From the spec: virtio-mem memory is never in the firmware memory map.\n"
              ">From an earlier review, quoted.\n")


def v2_text() -> str:
    return load_series().revision("v2").mbox.read_text()


def messages(text: str) -> list[str]:
    """TEXT (a format-patch mbox) cut into messages, each with its From line."""
    return [chunk for chunk in SEPARATOR_RE.split(text) if chunk.strip()]


def message_id(message: str) -> str:
    found = re.search(r"(?im)^Message-Id: <([^>]+)>", message)
    assert found, message[:200]
    return found.group(1)


def without_recipients(text: str) -> str:
    """TEXT with the To:/Cc: headers (and their continuation lines) of every message gone;
    Cc: trailers in the bodies stay."""
    out = []
    for message in messages(text):
        head, body = message.split("\n\n", 1)
        head = re.sub(r"(?m)^(?:To|Cc): .*(?:\n[ \t].*)*\n?", "", head + "\n").rstrip("\n")
        out.append(f"{head}\n\n{body}")
    return "".join(out)


def reply(to: str, subject: str, body: str, number: int, sender: str = REVIEWER) -> str:
    """A list reply to the message TO (as a mail client writes it)."""
    return (f"From {sender.split('<')[1].rstrip('>')} Fri Nov 27 10:00:0{number} 2026\n"
            f"Message-Id: <reply{number}@example.org>\nIn-Reply-To: <{message_id(to)}>\n"
            f"References: <{message_id(to)}>\nFrom: {sender}\n"
            f"Date: Fri, 27 Nov 2026 10:00:0{number} +0000\nSubject: Re: {subject}\n\n"
            f"{body}\n")


def subject(message: str) -> str:
    found = re.search(r"(?m)^Subject: (.*(?:\n .*)*)", message)
    assert found
    return " ".join(found.group(1).split())


def with_from_lines() -> str:
    """Patch 1's commit message gains prose starting with "From " (and a quoted ">From")."""
    parts = messages(v2_text())
    head, body = parts[1].split("\n\n", 1)
    parts[1] = f"{head}\n\n{FROM_LINES}\n{body}"
    return "".join(parts)


def encoded(encoding: str, index: int = 2) -> str:
    """Patch INDEX sent with a quoted-printable or base64 body (as some mailers do)."""
    parts = messages(v2_text())
    head, body = parts[index].split("\n\n", 1)
    if encoding == "quoted-printable":
        data = quopri.encodestring(body.encode()).decode()
    else:
        data = base64.encodebytes(body.encode()).decode()
    headers = (f"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
               f"Content-Transfer-Encoding: {encoding}")
    parts[index] = f"{head}\n{headers}\n\n{data}\n"
    return "".join(parts)


def crlf() -> bytes:
    return v2_text().replace("\n", "\r\n").encode()


def with_review() -> str:
    """A Reviewed-by on the cover letter (for every patch), an Acked-by on patch 2."""
    parts = messages(v2_text())
    cover, second = parts[0], parts[2]
    return "".join(parts) + reply(cover, subject(cover), f"> quoted\n\nReviewed-by: {REVIEWER}",
                                  1) + reply(second, subject(second),
                                             f"Looks right.\n\nAcked-by: {ACKER}", 2, ACKER)


def with_fixup_reply() -> str:
    """A reviewer's reply to patch 3 with an unquoted diff: not a patch of the series."""
    parts = messages(v2_text())
    third = parts[3]
    return "".join(parts) + reply(third, subject(third),
                                  f"How about this instead:\n\n{FIXUP_DIFF}", 3)


def two_revisions() -> str:
    """v1 (made from v2: other Message-Ids, an older date, one more line in patch 1) then v2."""
    v1 = v2_text().replace("[PATCH v2 ", "[PATCH ").replace("-v2-", "-v1-")
    v1 = v1.replace("Date: Thu, 26 Nov 2026", "Date: Mon, 23 Nov 2026")
    parts = messages(v1)
    head, body = parts[1].split("\n\n", 1)
    parts[1] = f"{head}\n\nThis is v1.\n\n{body}"
    return "".join(parts) + v2_text()


def partial(missing: int = 3) -> str:
    return "".join(m for n, m in enumerate(messages(v2_text())) if n != missing)


def duplicate(number: int = 2) -> str:
    parts = messages(v2_text())
    twin = parts[number].replace(f"-v2-{number}-", f"-v2-{number}-twin-")
    return "".join(parts[:number + 1]) + twin + "".join(parts[number + 1:])


def as_maildir(text: str, path: Path) -> Path:
    box = mailbox.Maildir(path, create=True)
    for message in messages(text):
        box.add(message.split("\n", 1)[1].encode())
    return path


def as_folder(text: str, path: Path) -> Path:
    """`git format-patch -o DIR` style: one NNNN-*.patch file per message, written in an
    order that is not the patch order (the name sorts them wrongly on purpose)."""
    path.mkdir(parents=True)
    for number, message in enumerate(reversed(messages(text))):
        (path / f"{number:04d}-message.patch").write_text(message)
    return path
