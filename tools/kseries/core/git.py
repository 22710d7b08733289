"""The one git module: repositories through GitPython, every git in a hermetic environment.

Hermetic: a user's ~/.gitconfig or /etc/gitconfig (format.signOff, diff.algorithm,
core.abbrev, am.threeWay, commit.gpgSign, ...) must not change what kseries applies,
exports or imports, so git reads only the repository's own config plus SAFE_SETTINGS
(GIT_CONFIG_GLOBAL=/dev/null, GIT_CONFIG_NOSYSTEM=1, GIT_CONFIG_COUNT=...), and no inherited
GIT_* variable (a hook's GIT_DIR or GIT_INDEX_FILE) points git at another repository.
hermetic_env() is that environment for programs that run git themselves (b4).

Every git command has a time limit (GIT_TIMEOUT_S): GitPython kills git and its children
when it is reached, and run_git() turns that into a ToolTimeout.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kseries.core.errors import KseriesError
from kseries.core.proc import TIMEOUT_S, ToolTimeout, last_line, require_program

# GitPython looks for git when it is imported and raises ImportError without one; kseries
# names the missing package instead (require_program) when it first runs git.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
import git as gitpython

GIT_TIMEOUT_S = TIMEOUT_S["git"]

# Settings that make our own git operations independent of the repository's config too.
SAFE_SETTINGS: Mapping[str, str] = {
    "core.autocrlf": "false",
    "core.fileMode": "true",
    "commit.gpgsign": "false",
    "gc.auto": "0",
    "advice.detachedHead": "false",
}
# The same as command-line options, for git run through proc.run.
SAFE_CONFIG = tuple(arg for key, value in SAFE_SETTINGS.items() for arg in ("-c", f"{key}={value}"))

# Blob ids in a patch's "index" lines at a fixed length (the kernel's core.abbrev): git's
# default grows with the number of *packed* objects, so the same commits would give other
# bytes in a freshly imported (unpacked) tree than in a repacked one.
INDEX_ABBREV = "--abbrev=12"


def forget_inherited_git_environment() -> None:
    """Drop GIT_* variables inherited from a calling git (hook, alias, rebase --exec).

    GitPython reads os.environ when it opens a repository and for every command, and
    cannot unset a variable per command, so they leave this process. GIT_PYTHON_* are
    GitPython's own settings and stay."""
    for name in [n for n in os.environ if n.startswith("GIT_")]:
        if not name.startswith("GIT_PYTHON_"):
            del os.environ[name]


def hermetic_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that make any git (ours, or b4's) ignore the user's and system config;
    EXTRA settings (e.g. user.name and user.email for b4) come on top of SAFE_SETTINGS."""
    forget_inherited_git_environment()
    settings = {**SAFE_SETTINGS, **(extra or {})}
    env = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_COUNT": str(len(settings))}
    for number, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{number}"] = key
        env[f"GIT_CONFIG_VALUE_{number}"] = value
    return env


class HermeticGit(gitpython.Git):
    """GitPython's git command interface, always with hermetic_env()."""

    def __init__(self, working_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(working_dir)
        self.update_environment(**hermetic_env())


class HermeticRepo(gitpython.Repo):
    """A GitPython repository whose commands run with hermetic_env()."""

    GitCommandWrapperType = HermeticGit


@dataclass(frozen=True)
class GitRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_git(repo: Path, *args: str, config: Mapping[str, str] | None = None,
            env: Mapping[str, str] | None = None, input_text: str | None = None,
            check: bool = True, timeout_s: float = GIT_TIMEOUT_S) -> GitRun:
    """`git -C REPO [-c CONFIG...] ARGS` (hermetic); with CHECK a failure is a KseriesError."""
    options = [arg for key, value in (config or {}).items() for arg in ("-c", f"{key}={value}")]
    command = [require_program("git"), "-C", str(repo), *options, *args]
    label = f"git {args[0]}"
    with _stdin(input_text) as stream:
        status, raw, err = HermeticGit(repo).execute(
            command, istream=stream, env=env, kill_after_timeout=timeout_s,
            with_extended_output=True, with_exceptions=False, stdout_as_string=False,
            strip_newline_in_stdout=False)
    # GitPython reports its own kill as SIGKILL with a "Timeout:" message.
    if status == -signal.SIGKILL and err.startswith("Timeout:"):
        raise ToolTimeout(f"{label} in {repo} timed out after {timeout_s:g} s; it was killed "
                          "with its child processes")
    result = GitRun(status, raw.decode(errors="replace"), _clean(err))
    if check and status != 0:
        raise KseriesError(f"{label} failed (exit {status}): {last_line(result.output)}")
    return result


def _clean(text: str) -> str:
    """GitPython decodes stderr with surrogate escapes; make it printable text."""
    return text.encode(errors="surrogateescape").decode(errors="replace")


@contextmanager
def _stdin(text: str | None) -> Iterator[int | None]:
    """TEXT as a file descriptor for git's standard input (GitPython takes no string)."""
    if text is None:
        yield None
        return
    with tempfile.TemporaryFile() as stream:
        stream.write(text.encode())
        stream.seek(0)
        yield stream.fileno()


def git(repo: Path, *args: str, check: bool = True, input_text: str | None = None,
        env: Mapping[str, str] | None = None) -> str:
    """Run git in REPO and return stdout (stripped of the final newline)."""
    return run_git(repo, *args, check=check, input_text=input_text, env=env).stdout.rstrip("\n")


@contextmanager
def open_repo(path: Path) -> Iterator[gitpython.Repo]:
    """The repository PATH is in (like `git -C PATH`), closed (its git helpers ended) after."""
    require_program("git")
    forget_inherited_git_environment()
    try:
        repo = HermeticRepo(path, search_parent_directories=True)
    except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError):
        raise KseriesError(f"{path} is not in a git repository") from None
    with repo:
        yield repo


# --- repositories, refs, commits ----------------------------------------------------------


def is_git_repo(path: Path) -> bool:
    try:
        with open_repo(path):
            return True
    except KseriesError:
        return False


def toplevel(path: Path) -> Path:
    with open_repo(path) as repo:
        top = repo.working_tree_dir
    if top is None:
        raise KseriesError(f"{path} is a bare git repository; pass a checkout with files")
    return Path(top).resolve()


def git_dir(worktree: Path) -> Path:
    """WORKTREE's own git directory (a linked worktree's is under the main .git/worktrees/)."""
    with open_repo(worktree) as repo:
        return Path(repo.git_dir)


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The full commit id of REV in REPO, or None when REPO does not know it."""
    found = run_git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    return found.stdout.strip() or None if found.returncode == 0 else None


def head_commit(repo: Path) -> str:
    with open_repo(repo) as opened:
        try:
            return opened.head.commit.hexsha
        except ValueError:  # HEAD names a branch without commits
            raise KseriesError(f"{repo} has no commits; commit the kernel source first") from None


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    return run_git(repo, "merge-base", "--is-ancestor", ancestor, descendant,
                   check=False).returncode == 0


def first_parent(repo: Path, commit: str) -> str:
    with open_repo(repo) as opened:
        parents = opened.commit(commit).parents
    if not parents:
        raise KseriesError(f"commit {commit[:12]} in {repo} has no parent")
    return parents[0].hexsha


def commits_between(repo: Path, base: str, head: str) -> list[str]:
    """The commit ids of BASE..HEAD, oldest first."""
    return git(repo, "rev-list", "--reverse", f"{base}..{head}").split()


def author(repo: Path, rev: str) -> tuple[str, str]:
    """(name, email) of the author of commit REV."""
    return _person(repo, rev, "author")


def _person(repo: Path, rev: str, role: str) -> tuple[str, str]:
    """(name, email) of the author or committer (ROLE) of commit REV."""
    commit = resolve_commit(repo, rev)
    if commit is None:
        raise KseriesError(f"'{rev}' is not a commit in {repo}")
    with open_repo(repo) as opened:
        who = getattr(opened.commit(commit), role)
    return who.name or "", who.email or ""


def file_at(repo: Path, commit: str, path: str) -> str:
    """The text of PATH as of COMMIT."""
    with open_repo(repo) as opened:
        try:
            blob = opened.commit(commit).tree / path
        except KeyError:
            raise KseriesError(f"{path} is not in {commit[:12]} of {repo}") from None
        data: bytes = blob.data_stream.read()
    return data.decode(errors="replace")


def config_value(repo: Path, key: str) -> str:
    """KEY from REPO's own config, or '' when it is not set."""
    return git(repo, "config", "--get", key, check=False)


def set_branch(repo: Path, branch: str, commit: str) -> None:
    git(repo, "branch", "-f", branch, commit)


def move_branch(repo: Path, branch: str, new: str, old: str, why: str) -> None:
    """Point BRANCH at NEW only if it is still at OLD (no one moved it meanwhile)."""
    git(repo, "update-ref", "-m", why, f"refs/heads/{branch}", new, old)


def set_config(repo: Path, key: str, value: str) -> None:
    """KEY = VALUE in REPO's own config (shared by its worktrees)."""
    git(repo, "config", key, value)


def unset_config(repo: Path, key: str) -> None:
    """Drop KEY from REPO's own config; nothing happens when it is not set."""
    git(repo, "config", "--unset-all", key, check=False)


def committer(repo: Path, rev: str) -> tuple[str, str]:
    """(name, email) of the committer of commit REV."""
    return _person(repo, rev, "committer")


def committer_emails(repo: Path, base: str, head: str) -> list[str]:
    """The committer email of each commit of BASE..HEAD."""
    return git(repo, "log", "--format=%ce", f"{base}..{head}").split()


def current_branch(repo: Path) -> str | None:
    """The branch REPO's checkout is on, or None when its HEAD is detached."""
    found = run_git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return found.stdout.strip() or None if found.returncode == 0 else None


def branches_containing(repo: Path, commit: str) -> list[str]:
    """The local branches whose history holds COMMIT, by name."""
    out = git(repo, "for-each-ref", "--format=%(refname:short)", f"--contains={commit}",
              "refs/heads/")
    return out.split()


def merge_base(repo: Path, one: str, other: str) -> str | None:
    found = run_git(repo, "merge-base", one, other, check=False)
    return found.stdout.strip() or None if found.returncode == 0 else None


def commit_trailers(repo: Path, base: str, head: str) -> list[tuple[str, tuple[str, ...]]]:
    """(subject, trailer lines) of each commit of BASE..HEAD, oldest first, as git's own
    trailer parser reads the messages (unfolded)."""
    out = git(repo, "log", "--reverse", "--format=%s%x00%(trailers:unfold)%x1e",
              f"{base}..{head}")
    commits = []
    for record in out.split("\x1e"):
        if record.strip("\n"):
            subject, _, trailers = record.strip("\n").partition("\x00")
            commits.append((subject, tuple(t for t in trailers.splitlines() if t.strip())))
    return commits



# --- worktrees ----------------------------------------------------------------------------


def add_worktree(repo: Path, path: Path, commit: str, branch: str | None = None) -> None:
    """A worktree of REPO at PATH checked out at COMMIT: detached, or on BRANCH (reset to
    COMMIT); stale worktree entries are pruned first."""
    prune_worktrees(repo)
    on = ["--detach"] if branch is None else ["-B", branch]
    git(repo, "worktree", "add", "-q", "-f", *on, str(path), commit)


def remove_worktree(repo: Path, path: Path) -> None:
    git(repo, "worktree", "remove", "--force", str(path), check=False)


def prune_worktrees(repo: Path) -> None:
    git(repo, "worktree", "prune")


def worktree_of(repo: Path, branch: str) -> Path | None:
    """The worktree of REPO that has BRANCH checked out, if any (`git worktree list`)."""
    path: Path | None = None
    for line in git(repo, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}":
            return path
    return None


def force_checkout(worktree: Path, commit: str, branch: str | None = None) -> None:
    """Put WORKTREE at COMMIT (detached, or on BRANCH), dropping every local change and
    untracked file: only for our own scratch and edit worktrees."""
    on = ["--detach"] if branch is None else ["-B", branch]
    git(worktree, "checkout", "-q", "-f", *on, commit)
    git(worktree, "clean", "-q", "-f", "-d")


# --- patches ------------------------------------------------------------------------------


# b4 writes its .mbx as mboxrd (a body line "From ..." is stored as ">From ..."): without
# --patch-format=mboxrd git am would keep the ">" in the commit message.
AM_ARGS = ("git", "am", "--patch-format=mboxrd", "--committer-date-is-author-date")


def am(worktree: Path, mbx: Path, identity: Mapping[str, str]) -> GitRun:
    """git am MBX (mboxrd, as b4 writes it) in WORKTREE as committer IDENTITY (user.name,
    user.email); committer dates from the patches, so the same mbox on the same base gives
    the same commits."""
    return run_git(worktree, *AM_ARGS[1:], str(mbx), config=identity, check=False)


def am_abort(worktree: Path, identity: Mapping[str, str]) -> None:
    """End a `git am` left half done in WORKTREE, if any. It needs IDENTITY like am itself
    (the abort writes the reflog), and a rebase-apply dir that outlives it is an error:
    every later am in that worktree would refuse to start."""
    if not (git_dir(worktree) / "rebase-apply").exists():
        return
    aborted = run_git(worktree, "am", "--abort", config=identity, check=False)
    if (git_dir(worktree) / "rebase-apply").exists():
        raise KseriesError(f"cannot end an interrupted git am in {worktree}: "
                           f"{last_line(aborted.output)}; run 'git -C {worktree} am --abort'")


def patch_ids(repo: Path, text: str) -> list[tuple[str, str]]:
    """(patch-id --stable, commit id) of each patch in TEXT (commit id zero for a bare diff)."""
    out = git(repo, "patch-id", "--stable", input_text=text)
    return [(fields[0], fields[1]) for line in out.splitlines() if len(fields := line.split()) == 2]


def format_patch(repo: Path, *args: str, sender: tuple[str, str] | None = None) -> str:
    """`git format-patch --stdout ARGS`: no signature (it would name our git version) and
    index lines at INDEX_ABBREV, so the bytes depend on the commits only. SENDER (name,
    email) is who sends the mails: the cover letter's From and the Message-Id domain."""
    identity = {"user.name": sender[0], "user.email": sender[1]} if sender else None
    return run_git(repo, "format-patch", "--stdout", "--no-signature", INDEX_ABBREV, *args,
                   config=identity).stdout.rstrip("\n")


def range_diff(repo: Path, old: tuple[str, str], new: tuple[str, str]) -> str:
    """git range-diff of OLD and NEW, each (base, head)."""
    return git(repo, "range-diff", "--no-color", f"{old[0]}..{old[1]}", f"{new[0]}..{new[1]}")
