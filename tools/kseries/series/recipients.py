"""To/Cc for an exported series, from the tree's get_maintainer (what `git send-email
--cc-cmd=scripts/get_maintainer.pl` and `b4 prep --auto-to-cc` do before mailing).

Each patch goes To: the maintainers get_maintainer names for it and Cc: everyone else it
names (reviewers, lists, ...), in the order it prints them; the cover letter goes to the
union, so whoever gets one patch sees the whole thread's start. The headers sit where
`git format-patch --to/--cc` puts them (after Subject), folded at ", " below 78 columns.
The sender is left out: they need no copy (the checks stage counts them as reached).
"""

from __future__ import annotations

import email.charset
import email.utils
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kseries.core.errors import KseriesError
from kseries.core.proc import last_line
from kseries.kernel import maintainers as gm
from kseries.kernel.maintainers import Named

# The first line of every message `git format-patch` writes (its magic date never varies).
MESSAGE_START_RE = re.compile(r"^From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$", re.MULTILINE)
WIDTH = 78
Ask = Callable[[int, str], list[Named]]


@dataclass(frozen=True)
class Routing:
    """Who one message goes to: To (maintainers) and Cc (everyone else), no one twice."""

    to: tuple[Named, ...] = ()
    cc: tuple[Named, ...] = ()

    @property
    def addresses(self) -> set[str]:
        return {n.address for n in (*self.to, *self.cc)}


def unique(named: Iterable[Named], skip: set[str]) -> tuple[Named, ...]:
    """NAMED in order, the first mention of each address kept, those in SKIP left out."""
    seen = set(skip)
    kept = []
    for one in named:
        if one.address not in seen:
            seen.add(one.address)
            kept.append(one)
    return tuple(kept)


def routing(named: Iterable[Named], sender: str = "") -> Routing:
    """NAMED split by role (get_maintainer names nobody twice), SENDER left out."""
    everyone = unique(named, {sender})
    return Routing(tuple(n for n in everyone if n.maintainer),
                   tuple(n for n in everyone if not n.maintainer))


def union(routings: Iterable[Routing], sender: str = "") -> Routing:
    """The cover letter's: every patch's To, then every Cc that is nobody's To."""
    routings = list(routings)
    to = unique((n for r in routings for n in r.to), {sender})
    return Routing(to, unique((n for r in routings for n in r.cc),
                              {sender, *(n.address for n in to)}))


def split_messages(mbox: str) -> list[str]:
    """The messages of a format-patch mbox, each from its 'From <sha>' line; joined back
    they are MBOX again (anything before the first message is kept as the first piece)."""
    starts = [m.start() for m in MESSAGE_START_RE.finditer(mbox)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return [mbox[a:b] for a, b in zip(starts, [*starts[1:], len(mbox)], strict=True)]


def is_patch(message: str) -> bool:
    return "\ndiff --git " in message


def sender_of(message: str) -> str:
    head = message.partition("\n\n")[0]
    found = re.search(r"^From: (.*(?:\n[ \t].*)*)", head, re.MULTILINE)
    return email.utils.parseaddr(" ".join(found.group(1).split()))[1].lower() if found else ""


def mail_form(named: Named) -> str:
    """NAMED as a header entry: as get_maintainer printed it when that is ASCII, else its
    name RFC 2047 encoded (as git format-patch writes a non-ASCII From:)."""
    if named.who.isascii():
        return named.who
    name = named.who.partition("<")[0].strip().strip('"')
    charset = email.charset.Charset("utf-8")
    charset.header_encoding = email.charset.QP
    return f"{charset.header_encode(name).replace('?utf-8?', '?UTF-8?')} <{named.address}>"


def folded(name: str, entries: list[str]) -> list[str]:
    """'NAME: a, b, ...' as header lines, broken after ', ' so that every line (with its
    trailing comma) stays under WIDTH columns; an entry too long for a line gets its own."""
    lines = [f"{name}: {entries[0]}"]
    for entry in entries[1:]:
        joined = f"{lines[-1]}, {entry}"
        if len(joined) + 1 < WIDTH:
            lines[-1] = joined
        else:
            lines[-1] += ","
            lines.append(f" {entry}")
    return lines


def header_fields(head: str) -> list[str]:
    """HEAD (a message's header block) as fields, each with its continuation lines."""
    fields: list[str] = []
    for line in head.split("\n"):
        if fields and line[:1] in (" ", "\t"):
            fields[-1] += f"\n{line}"
        else:
            fields.append(line)
    return fields


def field_index(fields: list[str], name: str) -> int | None:
    prefix = f"{name.lower()}:"
    return next((i for i, f in enumerate(fields) if f.lower().startswith(prefix)), None)


def add_field(fields: list[str], name: str, entries: list[str]) -> None:
    """ENTRIES into field NAME: appended to it when the message has one, else a new field
    right after Subject and To (where git format-patch --to/--cc puts them)."""
    if not entries:
        return
    lines = folded(name, entries)
    existing = field_index(fields, name)
    if existing is not None:
        lines[0] = " " + lines[0].removeprefix(f"{name}: ")
        fields[existing] += ",\n" + "\n".join(lines)
        return
    anchors = [i for i in (field_index(fields, "Subject"), field_index(fields, "To"))
               if i is not None]
    fields.insert(max(anchors) + 1 if anchors else len(fields), "\n".join(lines))


def already_there(fields: list[str]) -> set[str]:
    """The addresses the message's own To/Cc already name (a repo's format.to/format.cc)."""
    values = [" ".join(f.partition(":")[2].split()) for f in fields
              if f.lower().startswith(("to:", "cc:"))]
    return {addr.lower() for _name, addr in email.utils.getaddresses(values) if addr}


def addressed(message: str, route: Routing) -> str:
    """MESSAGE with ROUTE's To: and Cc: added to its header block."""
    head, sep, body = message.partition("\n\n")
    fields = header_fields(head)
    known = already_there(fields)
    for name, people in (("To", route.to), ("Cc", route.cc)):
        add_field(fields, name, [mail_form(n) for n in people if n.address not in known])
    return "\n".join(fields) + sep + body


def address_mbox(mbox: str, ask: Ask) -> str:
    """MBOX with recipients: each patch (numbered from 1) routed by ASK(number, message),
    every other message (the cover letter) by the union of the patches' routings."""
    messages = split_messages(mbox)
    routes: dict[int, Routing] = {}
    for position, message in enumerate(messages):
        if is_patch(message):
            routes[position] = routing(ask(len(routes) + 1, message), sender_of(message))
    for position, message in enumerate(messages):
        if position not in routes and MESSAGE_START_RE.match(message):
            routes[position] = union(routes.values(), sender_of(message))
    return "".join(addressed(m, routes[i]) if i in routes else m
                   for i, m in enumerate(messages))


def asker(tree: Path, workdir: Path) -> Ask:
    """ASK for address_mbox: get_maintainer in TREE on the message, kept in WORKDIR (its
    $HOME is an empty directory there too)."""
    home = workdir / "home"
    home.mkdir(exist_ok=True)

    def ask(number: int, message: str) -> list[Named]:
        patch = workdir / f"patch-{number}.patch"
        patch.write_bytes(message.encode())
        proc = gm.run_on(tree, patch, home)
        if proc.returncode != 0:
            raise KseriesError(f"{gm.SCRIPT} failed on patch {number} in {tree} (exit "
                               f"{proc.returncode}): {last_line(proc.stderr or proc.stdout)}")
        return gm.parse(proc.stdout)

    return ask


def add_recipients(mbox: str, tree: Path) -> tuple[str, str]:
    """(MBOX with To/Cc from TREE's get_maintainer, ''), or (MBOX, why not) when TREE has no
    scripts/get_maintainer.pl or MAINTAINERS: then it goes out without recipients."""
    if reason := gm.unavailable(tree):
        return mbox, f"no To/Cc written: {reason} (in {tree})"
    with tempfile.TemporaryDirectory(prefix="kseries-recipients-") as workdir:
        return address_mbox(mbox, asker(tree, Path(workdir))), ""
