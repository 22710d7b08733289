"""scripts/get_maintainer.pl of a kernel tree: how kseries runs it and reads its answer.

One runner for every caller (the checks stage's maintainers rule, `kseries export`'s
recipients), so both get the same answer for the same patch. It reads MAINTAINERS only:
--no-git and --no-git-fallback (the default tree has no history, and commit signers are
suggestions, not routing), --no-rolestats with --roles (who, and why, without the git
statistics). The patch comes on stdin, byte for byte.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kseries.core import git as g
from kseries.core.proc import run

SCRIPT = "get_maintainer.pl"
ARGS = ("--no-git", "--no-git-fallback", "--no-rolestats", "--roles")
# A bound for a hung script, not an estimate: it takes seconds on one patch.
TIMEOUT_S = 300.0
# 'Name <addr> (role)' for people, 'addr (role)' for lists; a role may hold parentheses
# ("maintainer:MEMORY HOT(UN)PLUG"), an address never does.
PERSON_RE = re.compile(r"^(?P<who>[^<>]*<(?P<addr>[^<>\s]+)>)(?:\s+\((?P<role>.*)\))?$")
LIST_RE = re.compile(r"^(?P<addr>[^\s<>()]+@[^\s<>()]+)(?:\s+\((?P<role>.*)\))?$")


@dataclass(frozen=True)
class Named:
    """One answer of get_maintainer: who (as it prints them), their address, their role."""

    who: str
    address: str
    role: str = ""

    def describe(self) -> str:
        return f"{self.who} ({self.role})" if self.role else self.who

    @property
    def maintainer(self) -> bool:
        """A maintainer of a section the patch touches (the To: of a mail); reviewers,
        lists and everyone else are Cc:. With several roles, the first one counts."""
        return self.role.startswith("maintainer")


def parse(output: str) -> list[Named]:
    """get_maintainer's answer, in the order it printed it."""
    named = []
    for line in output.splitlines():
        found = PERSON_RE.match(line.strip()) or LIST_RE.match(line.strip())
        if found is not None:
            who = found.group("who") if "who" in found.groupdict() else found.group("addr")
            named.append(Named(who.strip(), found.group("addr").lower(),
                               found.group("role") or ""))
    return named


def script_env(home: Path) -> dict[str, str]:
    """The environment for the tree's Perl scripts: the hermetic git one, HOME an empty
    directory (a user's ~/.get_maintainer.conf or ~/.checkpatch.conf cannot change the
    answer), and a fixed hash seed."""
    # Perl orders hash keys at random per process; get_maintainer breaks ties between
    # MAINTAINERS sections that way, so its order and roles changed from run to run.
    # A fixed seed gives the same answer every time (notes and mboxes are compared as bytes).
    return {**g.hermetic_env(), "HOME": str(home), "PERL_HASH_SEED": "0",
            "PERL_PERTURB_KEYS": "0"}


def command() -> list[str]:
    """The command line, relative to the top of the tree it runs in."""
    return ["perl", f"scripts/{SCRIPT}", *ARGS]


def unavailable(tree: Path) -> str:
    """Why get_maintainer cannot run in TREE, or '' when it can."""
    if not (tree / "scripts" / SCRIPT).is_file():
        return f"the tree has no scripts/{SCRIPT}"
    if not (tree / "MAINTAINERS").is_file():
        return "the tree has no MAINTAINERS"
    return ""


def run_on(tree: Path, patch: Path, home: Path,
           log: Path | None = None) -> subprocess.CompletedProcess[str]:
    """get_maintainer in TREE on the mail PATCH (stdin); the caller judges the exit code."""
    return run(command(), cwd=tree, env=script_env(home), stdin_file=patch,
               timeout_s=TIMEOUT_S, check=False, log=log)
