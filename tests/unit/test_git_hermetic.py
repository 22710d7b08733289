"""A user's git config (~/.gitconfig, $XDG_CONFIG_HOME/git/config) changes nothing kseries
applies, exports or imports: the same bytes and commit ids with a hostile config as without."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from kseries.core import git as g
from kseries.core.proc import ToolTimeout
from kseries.kernel.tree import import_into_git
from kseries.series.config import Base
from tests.conftest import git
from tests.unit.test_revisions import cli, make_workspace

# Each setting would change an exported byte or an applied commit, or make git fail.
HOSTILE_GITCONFIG = """\
[user]
	name = Hostile User
	email = hostile@evil.example
	useConfigOnly = true
[format]
	signOff = true
	signature = hostile signature
	subjectPrefix = HOSTILE
	headers = "X-Hostile: yes\\n"
	to = hostile@evil.example
	thread = deep
	numbered = false
[diff]
	algorithm = histogram
	noprefix = true
	mnemonicPrefix = true
	context = 1
	renames = copies
[color]
	ui = always
[core]
	abbrev = 20
	autocrlf = true
	hooksPath = {hooks}
[am]
	threeWay = true
	messageId = true
	keepCR = true
[apply]
	whitespace = error-all
[commit]
	gpgSign = true
[gpg]
	program = /bin/false
[init]
	defaultBranch = hostile
	templateDir = {hooks}/template
[b4]
	attestation-policy = hardfail
	linkmask = https://hostile.example/%s
"""
# Hooks git runs even for `commit --no-verify` and `am`: they would rewrite the message.
HOOK = "#!/bin/sh\necho 'Hostile-Trailer: yes' >> \"$1\"\n"


def hostile_home(home: Path) -> Path:
    hooks = home / "hooks"
    (hooks / "template").mkdir(parents=True)
    for name in ("applypatch-msg", "prepare-commit-msg", "commit-msg"):
        hook = hooks / name
        hook.write_text(HOOK)
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    config = HOSTILE_GITCONFIG.format(hooks=hooks)
    (home / ".gitconfig").write_text(config)
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "config").write_text(config)
    return home


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))


def export_and_import(ws: dict[str, Path]) -> tuple[bytes, str, str]:
    """The exported v1.mbx, the head commit `kseries import v1` makes, `kseries diff v1 v1`."""
    cli(ws, "export", "--branch", "work", "--as", "v1", "--base", "master", "--force")
    mbox = (ws["series"].parent / "v1.mbx").read_bytes()
    out = cli(ws, "import", "v1", "--force")
    edit = Path(out.split("worktree: ")[1].split()[0])
    return mbox, git(edit, "rev-parse", "HEAD"), cli(ws, "diff", "v1", "v1")


def test_export_and_import_ignore_the_users_git_config(
        small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(small_repo, tmp_path)
    use_home(monkeypatch, tmp_path / "clean-home")
    clean = export_and_import(ws)
    use_home(monkeypatch, hostile_home(tmp_path / "hostile-home"))
    hostile = export_and_import(ws)
    assert hostile == clean
    mbox = clean[0].decode()
    assert "Subject: [PATCH v1 1/2]" in mbox and "diff --git a/mm/a.c b/mm/a.c" in mbox
    assert "\n-- \n" not in mbox  # no signature naming our git version


def test_tree_import_ignores_the_users_git_config(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    base = Base("linux-source-6.12", "6.12.0-1", "6.12")
    commits = []
    for name, home in (("clean", tmp_path / "clean-home"),
                       ("hostile", hostile_home(tmp_path / "hostile-home"))):
        use_home(monkeypatch, home)
        source = tmp_path / name / "linux"
        (source / "mm").mkdir(parents=True)
        (source / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
        (source / "mm" / "a.c").write_text("int a;\r\n")
        (source / ".gitignore").write_text("*.o\n")
        commits.append(import_into_git(source, base, "2025-01-02T03:04:05+0000"))
    assert commits[0] == commits[1]


def test_inherited_git_dir_does_not_redirect_our_git(
        small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    assert g.toplevel(small_repo) == small_repo.resolve()
    assert g.head_commit(small_repo) == g.resolve_commit(small_repo, "master")
    assert g.git(small_repo, "ls-files") == "Makefile\nmm/a.c"


def test_a_hung_git_is_a_timeout(small_repo: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ToolTimeout, match=r"^git slow in .* timed out after 1 s; "):
        g.run_git(small_repo, "slow", config={"alias.slow": "!sleep 60"}, timeout_s=1)
    assert time.monotonic() - started < 10
