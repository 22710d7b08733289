"""A small 'kernel' repo for the checks stage's unit tests: a base commit, then patches.

The fixture tree's scripts/ hold small stand-ins for checkpatch.pl, kernel-doc and
get_maintainer.pl that print in the real scripts' formats (the real ones need the whole
kernel tree; tests/real/test_checks_real.py runs them): checkpatch reports a missing
Signed-off-by as an ERROR, kernel-doc a warning for each BADDOC(name) line (with its line
number and $SRCTREE in the file name, as the real one does), get_maintainer one maintainer
and one list for every patch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kseries.series.apply import AppliedPatch, ApplyResult
from kseries.series.mbox import Patch, Series
from kseries.stages.checks.common import Job
from tests.conftest import git

CHECKPATCH = r"""
my $text = do { local $/; <STDIN> };
if ($text !~ /^Signed-off-by:/m) {
    print "ERROR: Missing Signed-off-by: line(s)\n\n";
    print "total: 1 errors, 0 warnings, 0 checks, 9 lines checked\n";
    exit 1;
}
if ($text =~ /^\+.*\s$/m) {
    print "ERROR: trailing whitespace\n#12: FILE: mm/a.c:3:\n+int x; \n\n";
    print "CHECK: Alignment should match open parenthesis\n#14: FILE: mm/a.c:5:\n\n";
    print "total: 1 errors, 0 warnings, 1 checks, 9 lines checked\n";
    exit 1;
}
print "total: 0 errors, 0 warnings, 0 checks, 9 lines checked\n";
print "\nYour patch has no obvious style problems and is ready for submission.\n";
"""
KERNEL_DOC = r"""
my $file = $ARGV[-1];
my $path = defined $ENV{SRCTREE} ? "$ENV{SRCTREE}/$file" : $file;
open(my $in, '<', $path) or die "kernel-doc: cannot open $path\n";
while (<$in>) {
    print STDERR "$path:$.: warning: Function parameter '$1' not described\n"
        if /BADDOC\((\w+)\)/;
    print STDERR "$path:$.: error: Cannot parse struct '$1'\n" if /BADSTRUCT\((\w+)\)/;
}
"""
GET_MAINTAINER = r"""
my $text = do { local $/; <STDIN> };
print "Mai Ntainer <maint\@example.org> (maintainer:MEMORY HOT(UN)PLUG)\n";
print "linux-mm\@kvack.org (open list:MEMORY MANAGEMENT)\n";
"""
AUTHOR = "Test Author <test@example.org>"
MAINTAINER = "Mai Ntainer <maint@example.org>"
LIST = "linux-mm@kvack.org"


def kernel_repo(root: Path, history: bool = False) -> Path:
    """The fixture tree at ROOT; with HISTORY an older commit precedes the base."""
    repo = root / "linux"
    (repo / "scripts").mkdir(parents=True)
    (repo / "mm").mkdir()
    (repo / "include").mkdir()
    git(repo, "init", "-q", "-b", "master")
    if history:
        (repo / "README").write_text("old\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "mm: the old days")
    (repo / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    (repo / "MAINTAINERS").write_text("MEMORY HOT(UN)PLUG\nM:\tMai Ntainer <maint@example.org>\n")
    for name, text in (("checkpatch.pl", CHECKPATCH), ("kernel-doc", KERNEL_DOC),
                       ("get_maintainer.pl", GET_MAINTAINER)):
        (repo / "scripts" / name).write_text(text)
    (repo / "mm" / "a.c").write_text("".join(f"int line{i};\n" for i in range(1, 11)) +
                                     "/* BADDOC(old) */\n")
    (repo / "include" / "a.h").write_text("/* header */\nint a(void);\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "mm: base of the tree")
    return repo


def commit(repo: Path, path: str, old: str, new: str, message: str) -> str:
    target = repo / path
    text = target.read_text() if target.exists() else ""
    target.write_text(text.replace(old, new, 1) if old else text + new)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def signed(subject: str, *trailers: str) -> str:
    return "\n".join([subject, "", "Because.", "", *trailers, f"Signed-off-by: {AUTHOR}"])


@dataclass(frozen=True)
class Applied:
    """A fixture series: the repo, its base and the applied patches."""

    repo: Path
    base: str
    patches: tuple[AppliedPatch, ...]

    @property
    def head(self) -> str:
        return self.patches[-1].commit if self.patches else self.base

    def job(self, logs: Path, series: Series | None = None) -> Job:
        home = logs.parent / "home"
        home.mkdir(parents=True, exist_ok=True)
        return Job(self.repo, self.base, self.head, self.patches, series, logs, home)

    def result(self, series: Series | None) -> ApplyResult:
        return ApplyResult(self.repo, "kseries/test/v1", self.base, self.head, self.patches,
                           False, (), "", series=series)


def apply(repo: Path, edits: list[tuple[str, str, str, str]]) -> Applied:
    """Commit each (path, old, new, message) edit on top of REPO's HEAD."""
    base = git(repo, "rev-parse", "HEAD")
    patches = []
    for index, (path, old, new, message) in enumerate(edits, start=1):
        sha = commit(repo, path, old, new, message)
        patches.append(AppliedPatch(index, message.splitlines()[0], sha))
    return Applied(repo, base, tuple(patches))


def mailed(applied: Applied, to: tuple[str, ...] = (), cc: tuple[str, ...] = (),
           cover_cc: tuple[str, ...] = (), base_commit: bool = True) -> Series:
    """The series as it was mailed: the recipients given, sent by AUTHOR."""
    patches = tuple(Patch(p.index, len(applied.patches), p.subject, "", (), author=AUTHOR,
                          to=to, cc=cc) for p in applied.patches)
    cover = f"The cover.\n\nbase-commit: {applied.base}\n" if base_commit else "The cover.\n"
    return Series(applied.repo / "series.mbx", "the series", cover, patches, cover_cc=cover_cc)
