"""Shared fixtures: small throw-away git repos, and the real imported Linux 6.12 tree."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kseries.kernel.tree import Tree, cache_dir, provide_default_tree
from kseries.series.config import load_series

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def git(repo: Path, *args: str, input_text: str | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, input=input_text, check=True)
    return proc.stdout.strip()


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def release_edit_worktree(repo: Path, worktree: Path, branch: str) -> None:
    """Free BRANCH of REPO (the edit WORKTREE detached, the branch and b4's backup ref of it
    deleted) but keep the worktree: the next `kseries import --force` there checks out only
    what differs, where removing it and adding it again wrote and deleted 80k files (about
    50 s of every real-tree test that imports)."""
    git(worktree, "checkout", "-q", "--detach")
    git(worktree, "clean", "-q", "-fdx")
    git(repo, "branch", "-D", branch)  # its config section (b4's data) goes too
    git(repo, "update-ref", "-d", f"refs/original/{branch}")


def run_cli(*args: str | Path, cwd: Path = ROOT, timeout_s: float | None = None) -> CliResult:
    """Run the real console script (as a user would), capturing its output; past TIMEOUT_S
    the test fails (subprocess.TimeoutExpired)."""
    kseries = Path(sys.executable).parent / "kseries"
    proc = subprocess.run([str(kseries), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, check=False, timeout=timeout_s)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    """A bad input gives a non-zero exit and one 'kseries: error:' line, no traceback."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("kseries: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def snapshot(repo: Path) -> dict[str, str]:
    """A digest of every working-tree file plus HEAD, branch, index bytes and diffs.

    Equal snapshots before and after a command prove it left the checkout as found.
    Git is asked with --no-optional-locks so that taking the snapshot writes nothing.
    """
    state: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                state[str(path.relative_to(repo))] = hashlib.sha1(path.read_bytes()).hexdigest()
    state[":HEAD"] = git(repo, "rev-parse", "HEAD")
    state[":branch"] = git(repo, "symbolic-ref", "-q", "HEAD")
    state[":index"] = hashlib.sha1((repo / ".git" / "index").read_bytes()).hexdigest()
    state[":diff"] = git(repo, "--no-optional-locks", "diff")
    state[":cached"] = git(repo, "--no-optional-locks", "diff", "--cached")
    return state


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/real/ needs the real tree: `make test` deselects it by marker."""
    real = Path(__file__).resolve().parent / "real"
    for item in items:
        if real in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realtree)


@pytest.fixture
def patches(tmp_path: Path) -> Path:
    """A private copy of patches/ so that export cannot touch the project's files."""
    copy = tmp_path / "patches"
    copy.mkdir()
    for name in ("series.toml", "v2.mbx", "v2-cover.txt", "v3.mbx", "v3-cover.txt"):
        shutil.copy(ROOT / "patches" / name, copy / name)
    return copy


@pytest.fixture(scope="session")
def real_tree() -> Tree:
    """The pinned Debian 6.12 tree, imported once into the shared cache (as `make` does)."""
    config = load_series()
    return provide_default_tree(cache_dir(), config.base, progress=lambda _m: None)


@dataclass(frozen=True)
class DefaultBuild:
    """`kseries build --out OUT` of the current revision on every arch, run once a session:
    the build test checks it, the jobs test compares its merged jobs with it. A test that
    adds stages copies OUT first."""

    out: Path
    result: CliResult


@pytest.fixture(scope="session")
def default_build(real_tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> DefaultBuild:
    out = tmp_path_factory.mktemp("default-build")
    return DefaultBuild(out, run_cli("build", "--out", out))


@pytest.fixture
def small_repo(tmp_path: Path) -> Iterator[Path]:
    """A tiny 'kernel' git repo: a Makefile with a version and one C file."""
    repo = tmp_path / "linux"
    (repo / "mm").mkdir(parents=True)
    (repo / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION =\n")
    (repo / "mm" / "a.c").write_text("".join(f"int line{i};\n" for i in range(1, 21)))
    git(repo, "init", "-q", "-b", "master")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    yield repo


# The mm/ lines the KUnit overlay's hooks (and the series' own suite patch) anchor on.
MM_KCONFIG = """\
config MHP_MEMMAP_ON_MEMORY
\tdef_bool y

endif # MEMORY_HOTPLUG

config ARCH_MHP_MEMMAP_ON_MEMORY_ENABLE
\tbool
"""
MM_MAKEFILE = """\
obj-$(CONFIG_GUP_TEST) += gup_test.o
obj-$(CONFIG_DMAPOOL_TEST) += dmapool_test.o
obj-$(CONFIG_MEMORY_FAILURE) += memory-failure.o
"""
MM_MAINTAINERS = """\
MEMORY HOT(UN)PLUG
F:\tinclude/linux/memory_hotplug.h
F:\tmm/memory_hotplug.c
F:\ttools/testing/selftests/memory-hotplug/
"""


@pytest.fixture
def mm_repo(small_repo: Path) -> Path:
    """small_repo with the mm/Kconfig, mm/Makefile and MAINTAINERS lines the KUnit overlay
    hooks anchor on, committed."""
    (small_repo / "mm" / "Kconfig").write_text(MM_KCONFIG)
    (small_repo / "mm" / "Makefile").write_text(MM_MAKEFILE)
    (small_repo / "MAINTAINERS").write_text(MM_MAINTAINERS)
    git(small_repo, "add", "-A")
    git(small_repo, "commit", "-q", "-m", "mm files")
    return small_repo


def make_series(repo: Path, edits: list[tuple[str, str, str]], out: Path,
                cover: bool = True) -> Path:
    """Commit each (file, old, new) edit on a scratch branch of REPO and format them as an mbox."""
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "series-src")
    for number, (name, old, new) in enumerate(edits, start=1):
        path = repo / name
        path.write_text(path.read_text().replace(old, new, 1))
        git(repo, "commit", "-q", "-a", "-m", f"mm: change {number}", "-m", "Because.", "-s")
    args = ["format-patch", "-q", "--stdout", "--thread", f"--base={base}", f"{base}..HEAD"]
    mbox = git(repo, *(args[:1] + (["--cover-letter"] if cover else []) + args[1:]))
    git(repo, "checkout", "-q", "master")
    git(repo, "branch", "-q", "-D", "series-src")
    out.write_text(mbox + "\n")
    return out
