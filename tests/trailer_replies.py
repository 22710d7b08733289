"""Review replies made from a revision's own mbox (its Message-Ids and subjects), for the
trailers tests on small repos and on the real tree."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kseries.core import git as g

REVIEWER = "A <a@example.org>"
ACKER = "B <b@example.org>"


@dataclass(frozen=True)
class Posted:
    """One message of the revision as posted: its Message-Id and subject (unfolded)."""

    message_id: str
    subject: str


def posted(mbox: Path) -> list[Posted]:
    """The revision's messages in order (cover letter first), as git format-patch wrote them."""
    chunks = mbox.read_text().split("\nFrom 0000000000000000000000000000000000000000 ")
    messages = [email.message_from_string(c.split("\n", 1)[1], policy=email.policy.default)
                for c in chunks]
    return [Posted(str(m["Message-Id"]).strip("<>"), " ".join(str(m["Subject"]).split()))
            for m in messages]


def reply(to: Posted, cover: Posted, sender: str, body: str, number: int,
          thread_root: str | None = None) -> str:
    """A reply to TO (in the thread of COVER, or of THREAD_ROOT) from SENDER saying BODY."""
    root = thread_root or cover.message_id
    parent = to.message_id if thread_root is None else thread_root
    refs = f"<{root}>" if parent == root else f"<{root}> <{parent}>"
    address = sender.split("<")[1].rstrip(">")
    return (f"From {address} Thu Nov 26 09:00:00 2026\n"
            f"From: {sender}\n"
            f"Subject: Re: {to.subject}\n"
            f"Date: Thu, 26 Nov 2026 09:0{number}:00 +0000\n"
            f"Message-Id: <reply-{number}@example.org>\n"
            f"In-Reply-To: <{parent}>\n"
            f"References: {refs}\n\n"
            f"On {to.subject}:\n> (quoted)\n\n{body}\n\n")


def review_replies(mbox: Path, out: Path, reviewed: str = "Reviewed-by",
                   acked: str = "Acked-by", thread_root: str | None = None) -> Path:
    """OUT: a saved mbox of two replies to MBOX's revision, a REVIEWED trailer from A on the
    cover letter and an ACKED trailer from B on patch 2 (with THREAD_ROOT, both answer that
    Message-Id instead: another thread)."""
    messages = posted(mbox)
    cover, second = messages[0], messages[2]
    out.write_text(
        reply(cover, cover, REVIEWER, f"Looks good.\n\n{reviewed}: {REVIEWER}", 1, thread_root)
        + reply(second, cover, ACKER, f"{acked}: {ACKER}", 2, thread_root))
    return out


def b4(worktree: Path, identity: tuple[str, str], *args: str,
       editor: str | None = None) -> str:
    """b4 ARGS (offline) in WORKTREE as IDENTITY, as a user would run it there (with
    EDITOR as git's editor); its output. An SMTP server is named so that b4 send in a
    kernel tree does not pick its web endpoint (which signs); a dry run never connects."""
    settings = {"user.name": identity[0], "user.email": identity[1],
                "sendemail.smtpserver": "localhost"}
    env = {**os.environ, **g.hermetic_env(settings), **({"GIT_EDITOR": editor} if editor else {})}
    program = Path(sys.executable).parent / "b4"
    proc = subprocess.run([str(program), "--offline-mode", "--no-interactive", *args],
                          cwd=worktree, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def b4_send(worktree: Path, outdir: Path, identity: tuple[str, str]) -> list[Path]:
    """`b4 send -o OUTDIR` on the enrolled branch of WORKTREE: the messages, in order."""
    b4(worktree, identity, "send", "--no-sign", "-o", str(outdir))
    return sorted(outdir.glob("*.eml"))


def subject_of(message: Path) -> str:
    """The Subject of a message file, unfolded."""
    parsed = email.message_from_bytes(message.read_bytes(), policy=email.policy.default)
    return " ".join(str(parsed["Subject"]).split())


def patch_ids(repo: Path, texts: list[str]) -> list[str]:
    """git patch-id --stable of every patch in TEXTS, in order (the diffs, not the mail)."""
    proc = subprocess.run(["git", "-C", str(repo), "patch-id", "--stable"],
                          input="".join(texts), capture_output=True, text=True, check=True)
    return [line.split()[0] for line in proc.stdout.splitlines()]
