"""`kseries trailers`: review trailers from a saved thread onto an enrolled edit branch, by
`b4 trailers -u` offline, in the branch's own edit worktree.

b4 decides everything about trailers (which reply answers which patch, by patch-id; a
cover-letter reply counts for every patch; a trailer whose address is not the sender's is
ignored): kseries only hands it the thread and reports what changed in the commits. A
saved reply alone does not hold the patches it answers, and b4 matches a reply to a commit
through the patch it replies to, so the revision's own mbox (patches/vN.mbx) goes into the
thread too: every message of the file, plus each message of vN.mbx the file lacks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.series.config import Revision
from kseries.series.prep import PrepInfo, is_enrolled, prep_info, run_b4
from kseries.series.thread import Thread, read_thread, to_mboxrd

MISMATCH_RE = re.compile(r"! Trailer: (.+)\n\s+Msg From: (.+)")
# b4 takes any "Word-by: address" line of a reply as a trailer, so a typo ("Reviewd-by:")
# would reach the commits; these are the names the kernel uses: checkpatch.pl's
# $signature_tags, and the non-person trailers b4 accepts from replies.
KNOWN_NAMES = frozenset({
    "signed-off-by", "co-developed-by", "acked-by", "tested-by", "reviewed-by",
    "reported-by", "suggested-by", "to", "cc", "fixes", "link", "closes",
})
Commits = Sequence[tuple[str, tuple[str, ...]]]


@dataclass(frozen=True)
class Added:
    """A trailer b4 added to patch INDEX (of TOTAL)."""

    index: int
    total: int
    subject: str
    trailer: str

    @property
    def name(self) -> str:
        return self.trailer.partition(":")[0].strip()

    def describe(self) -> str:
        return f"patch {self.index}/{self.total} {self.subject}: + {self.trailer}"


@dataclass(frozen=True)
class TrailerResult:
    branch: str
    worktree: Path
    old_head: str
    new_head: str
    added: tuple[Added, ...]
    log: Path


def edit_worktree(repo: Path, branch: str) -> Path:
    """The worktree where BRANCH, an enrolled edit branch, is checked out; bad input is an
    error naming the remedy. Never the user's own checkout (b4 would rewrite in it)."""
    if g.resolve_commit(repo, f"refs/heads/{branch}") is None:
        raise KseriesError(f"no branch '{branch}' in {repo}; 'kseries import vN' makes the "
                           "edit branch of a revision")
    if not is_enrolled(repo, branch):
        raise KseriesError(f"branch '{branch}' is not enrolled with b4 prep; import it again "
                           "('kseries import vN --force') or run 'b4 prep --enroll BASE' in it")
    worktree = g.worktree_of(repo, branch)
    if worktree is None:
        raise KseriesError(f"branch '{branch}' is not checked out in any worktree (a rebase "
                           "in progress?); finish it, or 'kseries import vN --force'")
    if worktree.resolve() == g.toplevel(repo):
        raise KseriesError(f"branch '{branch}' is checked out in your tree {repo} itself; "
                           "kseries rewrites it only in its edit worktree: check out another "
                           "branch there, or use 'kseries import vN'")
    return worktree


def thread_stream(source: Path, revision_mbox: Path | None, out: Path) -> Path:
    """SOURCE's messages plus those of REVISION_MBOX it lacks, as the mboxrd stream b4
    reads on stdin (see kseries.series.thread: a file path would cut "From " lines)."""
    given = read_thread(source)
    known = {mail.message_id for mail in given.mails}
    revision = read_thread(revision_mbox).mails if revision_mbox is not None else ()
    missing = tuple(mail for mail in revision if mail.message_id not in known)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_mboxrd(Thread(source, missing + given.mails)))
    return out


def collect_trailers(repo: Path, branch: str, source: Path, revisions: Sequence[Revision],
                     workdir: Path, any_name: bool = False) -> TrailerResult:
    """b4 trailers -u on BRANCH with the thread in SOURCE (plus the mbox of the revision b4
    tracks the branch as, among REVISIONS: the patches replies answer); the b4 run is
    logged in WORKDIR. Unless ANY_NAME, a trailer name the kernel does not use undoes it."""
    if not source.exists():
        raise KseriesError(f"--from {source}: no such file; save the thread with the replies "
                           "(from your mail client, or 'b4 mbox MSGID')")
    worktree = edit_worktree(repo, branch)
    info = prep_info(worktree, branch)
    stream = thread_stream(source, revision_mbox(revisions, info.revision),
                           workdir / "thread.mboxrd")
    before = g.commit_trailers(worktree, info.start_commit, branch)
    log = b4_update(worktree, info, stream, workdir / "b4.log")
    added = added_trailers(before, g.commit_trailers(worktree, info.start_commit, branch))
    if not added:
        raise KseriesError(nothing_added(info, source, log))
    new_head = g.resolve_commit(worktree, branch) or info.end_commit
    if not any_name:
        refuse_unknown_names(worktree, branch, (info.end_commit, new_head), added)
    return TrailerResult(branch, worktree, info.end_commit, new_head, added, log)


def b4_update(worktree: Path, info: PrepInfo, stream: Path, log: Path) -> Path:
    """b4 trailers -u on the thread in STREAM, logged in LOG. b4 runs as the series'
    committer: it re-stamps the commits it rewrites with its user, and refuses to rewrite
    a commit someone else committed (import commits as kseries; an edit may not)."""
    committers = sorted(set(g.committer_emails(worktree, info.start_commit, info.branch)))
    if len(committers) > 1:
        raise KseriesError(f"the commits of {info.branch} are committed by "
                           f"{', '.join(committers)}, and b4 rewrites only one committer's "
                           "commits; re-commit them as one: 'git -C "
                           f"{worktree} rebase --force-rebase {info.start_commit[:12]}'")
    ran = run_b4(worktree, g.committer(worktree, info.branch), "trailers", "--update",
                 "--use-local-mbox", "-", stdin_file=stream)
    log.write_text(ran.output)
    return log


def refuse_unknown_names(worktree: Path, branch: str, heads: tuple[str, str],
                         added: Sequence[Added]) -> None:
    """Undo b4's rewrite (the branch back at its old tip: b4 changed messages only, so the
    worktree's files and index stay right) when it added a trailer of an unknown name."""
    unknown = [a for a in added if a.name.lower() not in KNOWN_NAMES]
    if not unknown:
        return
    old_head, new_head = heads
    g.move_branch(worktree, branch, old_head, new_head, "kseries: undo b4 trailers -u")
    names = sorted({a.name for a in unknown})
    raise KseriesError(f"the thread has {', '.join(repr(n) for n in names)} trailers, not a "
                       "name the kernel uses (a typo?); nothing was changed: fix the reply, "
                       "or pass --any-name to take them as they are")


def revision_mbox(revisions: Sequence[Revision], number: int) -> Path | None:
    """The mbox of revision vNUMBER when series.toml has it (a branch on its way to a new
    revision has none yet: the thread file must then hold the patches)."""
    mboxes = [r.mbox for r in revisions if r.name == f"v{number}" and r.mbox.is_file()]
    return mboxes[0] if mboxes else None


def added_trailers(before: Commits, after: Commits) -> tuple[Added, ...]:
    """The trailer lines each commit has after b4 ran and did not have before (b4 rewrites
    commit messages only, so the series keeps its commits in order)."""
    if len(before) != len(after):
        raise KseriesError(f"b4 trailers changed the number of commits ({len(before)} -> "
                           f"{len(after)}); see the branch's reflog")
    added: list[Added] = []
    for index, ((_, old), (subject, new)) in enumerate(zip(before, after, strict=True), 1):
        had = Counter(old)
        for trailer in new:
            if had[trailer] > 0:
                had[trailer] -= 1
            else:
                added.append(Added(index, len(after), subject, trailer))
    return tuple(added)


def nothing_added(info: PrepInfo, source: Path, log: Path) -> str:
    """Why b4 added nothing, as one line with the remedy."""
    output = log.read_text()
    ignored = [f"'{t.strip()}' (sent by {who.strip()})" for t, who in MISMATCH_RE.findall(output)]
    why = (f"b4 ignored {', '.join(ignored)}: the address is not the sender's"
           if ignored else "replies must answer the cover letter or a patch of "
           f"v{info.revision} (In-Reply-To its Message-Id) with a trailer such as "
           "'Reviewed-by: Name <address>' from that sender, and b4 finds the patch a reply "
           "answers by its diff (a patch edited since then gets none)")
    return f"no new trailers for {info.branch} in {source}: {why}; b4's log: {log}"
