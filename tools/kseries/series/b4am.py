"""What b4 applies from a thread: `b4 am` offline on the thread's mboxrd stream, and the
series model read back from b4's own output (its patches, trailers, revision, cover).

kseries decides nothing b4 decides: which messages are patches, which revision, which
trailers go where all come from b4's .mbx. kseries adds what b4 only warns about (a
missing or duplicate patch is an error here: applying part of a series is never what a
maintainer meant) and says what b4 left out and why.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from liblore.utils import split_mbox_as_bytes

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.core.proc import run
from kseries.series.mbox import Series, series_of
from kseries.series.thread import Mail, Thread, mail_of, read_thread, to_mboxrd

TRAILER_RE = re.compile(r"^[A-Z][A-Za-z0-9-]*-by: .+$|^(?:Fixes|Link|Closes): .+$",
                        re.MULTILINE)
QUOTED_FROM_RE = re.compile(r"^>+From ")
B4_MISSING_RE = re.compile(r"ERROR: missing \[(\d+)/(\d+)\]")


@dataclass(frozen=True)
class Collected:
    """A trailer b4 added to patch INDEX, and the reply it came from."""

    index: int
    trailer: str
    source: str

    def describe(self) -> str:
        return f"patch {self.index}: + {self.trailer} (from {self.source})"


@dataclass(frozen=True)
class Ignored:
    """A message of the thread that is not part of the applied series, and why."""

    message_id: str
    subject: str
    reason: str
    has_diff: bool

    def describe(self) -> str:
        return f"<{self.message_id}> '{self.subject}': {self.reason}"


@dataclass(frozen=True)
class Prepared:
    """The series as b4 made it ready for git am."""

    thread: Thread
    mbx: Path
    series: Series
    revision: int
    trailers: tuple[Collected, ...]
    ignored: tuple[Ignored, ...]
    command: tuple[str, ...]
    stream: Path
    b4_said: tuple[str, ...] = ()
    lossy: tuple[tuple[int, str], ...] = ()

    @property
    def notes(self) -> list[str]:
        """What a maintainer reads before trusting the result."""
        revisions = sorted({m.revision for m in self.thread.mails if m.is_patch})
        notes = [f"b4 applied v{self.revision} of {self.thread.source.name}"
                 + (f" (the thread holds {', '.join(f'v{r}' for r in revisions)})"
                    if len(revisions) > 1 else "")]
        if self.thread.unthreaded:
            notes.append(f"{self.thread.unthreaded} messages without Message-Id (git "
                         "format-patch without --thread); kseries threaded them under the "
                         "first message for b4")
        notes += [f"b4: {line}" for line in self.b4_said]
        notes += [lossy_note(index, line) for index, line in self.lossy]
        notes += [f"trailer collected: {t.describe()}" for t in self.trailers]
        notes += [f"ignored: {i.describe()}" for i in self.ignored]
        return notes


def prepare(source: Path, outdir: Path, cwd: Path, revision: int | None = None) -> Prepared:
    """b4 am the thread in SOURCE into OUTDIR (replaced), running in the git repo CWD (b4
    looks up the base-commit there, read only); REVISION picks one of several revisions."""
    thread = read_thread(source)
    chosen = choose_revision(thread, revision)
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    stream = outdir / "thread.mboxrd"
    stream.write_bytes(to_mboxrd(thread))
    command = ["b4", "--offline-mode", "--no-interactive", "am", "--use-local-mbox", "-",
               "--use-version", str(chosen), "--outdir", str(outdir / "am")]
    # b4 reads its settings with git config and runs git: the same hermetic environment.
    proc = run(command, cwd=cwd, env=g.hermetic_env(), stdin_file=stream, check=False)
    output = proc.stdout + proc.stderr
    (outdir / "b4.log").write_text(output)
    mbx = next(iter(sorted((outdir / "am").glob("*.mbx"))), None)
    if proc.returncode != 0 or mbx is None:
        raise KseriesError(f"b4 am could not read {source}: {_b4_problem(output)}")
    if missing := B4_MISSING_RE.search(output):
        raise KseriesError(f"{source}: b4 finds patch {missing.group(1)}/{missing.group(2)} "
                           "missing; save the whole thread")
    prepared = _read_back(thread, mbx, chosen, tuple(command), stream)
    said = tuple(line.strip() for line in output.splitlines() if line.strip().startswith("Base:"))
    return replace(prepared, b4_said=said)


def choose_revision(thread: Thread, wanted: int | None) -> int:
    """The revision to apply (the newest unless WANTED), after checking that it is whole:
    every patch 1..N once. b4 would apply a partial series with a warning."""
    patches = [m for m in thread.mails if m.is_patch and not m.reply and m.counter > 0]
    if not patches:
        raise KseriesError(f"{thread.source} holds {len(thread.mails)} messages but no patch "
                           "(no '[PATCH ...]' message that is not a reply)")
    revisions = sorted({m.revision for m in patches})
    chosen = wanted if wanted is not None else revisions[-1]
    if chosen not in revisions:
        known = ", ".join(f"v{r}" for r in revisions)
        raise KseriesError(f"{thread.source} has no v{chosen} (it holds {known}); pass "
                           "--thread-revision with one of those")
    mine = [m for m in patches if m.revision == chosen]
    counts = Counter(m.counter for m in mine)
    if twice := sorted(n for n, c in counts.items() if c > 1):
        same = [m.label for m in mine if m.counter == twice[0]]
        raise KseriesError(f"v{chosen} has two messages numbered {twice[0]}/"
                           f"{mine[0].expected}: {' and '.join(same)}; remove the wrong one")
    expected = max(m.expected for m in mine)
    if missing := sorted(set(range(1, expected + 1)) - set(counts)):
        numbers = ", ".join(f"{n}/{expected}" for n in missing)
        raise KseriesError(f"v{chosen} is incomplete: patch {numbers} missing from "
                           f"{thread.source}; save the whole thread (e.g. b4 mbox MSGID)")
    return chosen


def _read_back(thread: Thread, mbx: Path, revision: int, command: tuple[str, ...],
               stream: Path) -> Prepared:
    applied = [mail_of(raw, n) for n, raw in enumerate(split_mbox_as_bytes(mbx.read_bytes()))
               if raw.strip()]
    covers = sorted(mbx.parent.glob("*.cover"))
    cover = mail_of(split_mbox_as_bytes(covers[0].read_bytes())[0], 0) if covers else None
    originals = thread.by_id()
    series = series_of(mbx, cover, applied, originals)
    used = {m.message_id for m in applied} | ({cover.message_id} if cover else set())
    return Prepared(thread, mbx, series, revision,
                    tuple(collected_trailers(applied, originals, thread)),
                    tuple(ignored_messages(thread, used, revision)), command, stream,
                    lossy=tuple(quoted_from_lines(applied, originals)))


def quoted_from_lines(applied: list[Mail], originals: dict[str, Mail]) -> list[tuple[int, str]]:
    """Commit-message lines of the patches as sent that start with ">From ". b4 (0.16)
    escapes "From " lines mboxo-style (">From ") but its output is applied mboxrd-style
    (`b4 shazam` and kseries: git am --patch-format=mboxrd), so such a line loses one ">"
    in the commit, exactly as b4 would apply it. A maintainer should know."""
    lines = []
    for mail in applied:
        sent = originals.get(mail.message_id, mail)
        message = sent.body.split("\n---\n", 1)[0]
        lines += [(mail.counter, line) for line in message.splitlines()
                  if QUOTED_FROM_RE.match(line)]
    return lines


def lossy_note(index: int, line: str) -> str:
    return (f"patch {index}: the commit message line '{line}' is applied as '{line[1:]}' "
            "(b4 escapes From lines mboxo-style and is applied mboxrd-style)")


def trailers_of(body: str) -> list[str]:
    """The trailer lines of a patch's commit message (above its '---')."""
    message = body.split("\n---\n", 1)[0]
    return [line.strip() for line in TRAILER_RE.findall(message)]


def collected_trailers(applied: list[Mail], originals: dict[str, Mail],
                       thread: Thread) -> list[Collected]:
    """What b4 added to each patch: its trailers that the patch as sent did not carry,
    each with the first reply that holds it."""
    replies = [m for m in thread.mails if m.reply]
    found: list[Collected] = []
    for mail in applied:
        sent = originals.get(mail.message_id)
        before = set(trailers_of(sent.body)) if sent else set()
        for trailer in trailers_of(mail.body):
            if trailer in before:
                continue
            source = next((r.label for r in replies if trailer in r.body), "b4")
            found.append(Collected(mail.counter, trailer, source))
    return found


def ignored_messages(thread: Thread, used: set[str], revision: int) -> list[Ignored]:
    ignored = []
    for mail in thread.mails:
        if mail.message_id in used:
            continue
        ignored.append(Ignored(mail.message_id, mail.subject, _why_ignored(mail, revision),
                               mail.has_diff))
    return ignored


def _why_ignored(mail: Mail, revision: int) -> str:
    if mail.reply and mail.has_diff:
        return "a reply with a diff: not a patch of the series, not applied"
    if mail.reply:
        return "a reply (its trailers, if any, were collected)"
    if mail.is_patch and mail.revision != revision:
        return (f"v{mail.revision}, not the applied v{revision} (--thread-revision "
                f"{mail.revision} applies it)")
    return "not a patch of the series"


def _b4_problem(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "rror" in line]
    return (errors or lines or ["b4 printed nothing (is it a git format-patch mailbox?)"])[-1]
