"""Real threads applied on the real 6.12 tree: every case gives the very commits (same ids,
so the same messages byte for byte) that b4 am + git am give when a maintainer runs them by
hand, and kseries' series model matches what was applied."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kseries.core import git as g
from kseries.kernel.tree import Tree, cache_dir
from kseries.series.apply import APPLY_IDENTITY, ApplyResult, apply_series
from tests import thread_cases as cases
from tests.conftest import ROOT, assert_one_line_error, git, run_cli

pytestmark = pytest.mark.realtree
B4 = str(Path(sys.executable).parent / "b4")


@pytest.fixture(scope="module")
def cache() -> Path:
    """The shared cache: its scratch worktree of the tree is warm (a new one is an 80k-file
    checkout). The by-hand runs use that worktree too, after kseries is done with it."""
    return cache_dir()


def hand_apply(worktree: Path, base: str, source: Path | bytes, *b4_args: str) -> list[str]:
    """What a maintainer runs: `b4 am` offline (on the path, or on stdin when given bytes),
    then `git am --patch-format=mboxrd` of b4's .mbx as b4 shazam does, committing as the
    same identity with the author's dates (as kseries does, so commit ids compare). The
    worktree is kseries' scratch one, reset to BASE first: kseries resets it again itself."""
    env = {**os.environ, **g.hermetic_env()}
    subprocess.run(["git", "checkout", "-q", "-f", "--detach", base], cwd=worktree, check=True,
                   env=env)
    out = Path(tempfile.mkdtemp(prefix="kseries-by-hand-"))
    local = ["-m", "-"] if isinstance(source, bytes) else ["-m", str(source)]
    subprocess.run([B4, "--offline-mode", "-n", "am", *local, *b4_args, "-o", str(out)],
                   input=source if isinstance(source, bytes) else None, cwd=worktree,
                   capture_output=True, check=True, env=env)
    [mbx] = out.glob("*.mbx")
    identity = [arg for key, value in APPLY_IDENTITY.items() for arg in ("-c", f"{key}={value}")]
    subprocess.run(["git", *identity, "am", "--patch-format=mboxrd",
                    "--committer-date-is-author-date", str(mbx)], cwd=worktree,
                   capture_output=True, check=True, env=env)
    shutil.rmtree(out)
    return git(worktree, "rev-list", "--reverse", f"{base}..HEAD").splitlines()


def kseries_apply(real_tree: Tree, cache: Path, source: Path,
                  revision: int | None = None) -> ApplyResult:
    return apply_series(real_tree, source, cache, "threads", "case", thread_revision=revision)


def messages_of(worktree: Path, commits: list[str]) -> list[str]:
    return [git(worktree, "log", "-1", "--format=%B", c) for c in commits]


def assert_model_matches_commits(result: ApplyResult) -> None:
    """The series model is what was applied: same patches, same files, same order."""
    assert result.series is not None
    for patch, applied in zip(result.series.patches, result.patches, strict=True):
        files = git(result.worktree, "diff-tree", "--no-commit-id", "--name-only", "-r",
                    applied.commit).splitlines()
        assert sorted(files) == list(patch.paths)
        assert git(result.worktree, "log", "-1", "--format=%s", applied.commit) == patch.subject


CASES = {
    "plain": cases.v2_text,
    "quoted-printable": lambda: cases.encoded("quoted-printable"),
    "base64": lambda: cases.encoded("base64", 3),
    "review-trailers": cases.with_review,
    "fixup-reply": cases.with_fixup_reply,
    "two-revisions": cases.two_revisions,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_thread_applies_as_b4_by_hand(real_tree: Tree, cache: Path, tmp_path: Path,
                                      name: str) -> None:
    source = tmp_path / f"{name}.mbox"
    source.write_text(CASES[name]())
    result = kseries_apply(real_tree, cache, source)
    assert_model_matches_commits(result)
    reference = hand_apply(result.worktree, result.base, source)
    assert [p.commit for p in result.patches] == reference


def test_review_trailers_land_where_b4_puts_them(real_tree: Tree, cache: Path,
                                                 tmp_path: Path) -> None:
    source = tmp_path / "review.mbox"
    source.write_text(cases.with_review())
    result = kseries_apply(real_tree, cache, source)
    messages = messages_of(result.worktree, [p.commit for p in result.patches])
    assert all(f"Reviewed-by: {cases.REVIEWER}" in m for m in messages)
    assert [f"Acked-by: {cases.ACKER}" in m for m in messages] == [False, True, False, False]


def test_from_lines_are_kept_as_b4_applies_them(real_tree: Tree, cache: Path,
                                                tmp_path: Path) -> None:
    """b4 on the file path cuts the patch at "From the spec:"; on stdin it does not."""
    source = tmp_path / "from.mbox"
    source.write_text(cases.with_from_lines())
    result = kseries_apply(real_tree, cache, source)
    [first] = messages_of(result.worktree, [result.patches[0].commit])
    assert "\nFrom the spec: virtio-mem memory is never" in f"\n{first}"
    assert ">From the spec" not in first
    assert_model_matches_commits(result)
    assert [p.commit for p in result.patches] == hand_apply(result.worktree, result.base,
                                                            source.read_bytes())
    broken = subprocess.run([B4, "--offline-mode", "-n", "am", "-m", str(source), "-o",
                             str(tmp_path / "by-path")], capture_output=True, text=True,
                            cwd=tmp_path, check=False)
    assert broken.returncode != 0 or not list((tmp_path / "by-path").glob("*.mbx")) or \
        "From the spec" not in next((tmp_path / "by-path").glob("*.mbx")).read_text()


def test_crlf_thread_gives_the_plain_commits(real_tree: Tree, cache: Path,
                                             tmp_path: Path) -> None:
    plain, crlf = tmp_path / "plain.mbox", tmp_path / "crlf.mbox"
    plain.write_text(cases.v2_text())
    crlf.write_bytes(cases.crlf())
    expected = [p.commit for p in kseries_apply(real_tree, cache, plain).patches]
    assert [p.commit for p in kseries_apply(real_tree, cache, crlf).patches] == expected


def test_older_revision_on_request(real_tree: Tree, cache: Path, tmp_path: Path) -> None:
    source = tmp_path / "two.mbox"
    source.write_text(cases.two_revisions())
    result = kseries_apply(real_tree, cache, source, revision=1)
    assert "This is v1." in messages_of(result.worktree, [result.patches[0].commit])[0]
    assert [p.commit for p in result.patches] == hand_apply(result.worktree, result.base,
                                                            source, "-v", "1")


@pytest.mark.parametrize("form", ["maildir", "folder"])
def test_maildir_and_folder_give_the_mbox_commits(real_tree: Tree, cache: Path,
                                                  tmp_path: Path, form: str) -> None:
    text = cases.with_review()
    mbox = tmp_path / "thread.mbox"
    mbox.write_text(text)
    expected = [p.commit for p in kseries_apply(real_tree, cache, mbox).patches]
    make = cases.as_maildir if form == "maildir" else cases.as_folder
    source = make(text, tmp_path / form)
    assert [p.commit for p in kseries_apply(real_tree, cache, source).patches] == expected


def test_stdin_thread_through_the_cli_and_its_report(real_tree: Tree, tmp_path: Path) -> None:
    out = tmp_path / "out"
    kseries = Path(sys.executable).parent / "kseries"
    proc = subprocess.run([str(kseries), "verify", "--stage", "apply", "--mbox", "-",
                           "--out", str(out)], input=cases.with_fixup_reply().encode(),
                          capture_output=True, cwd=ROOT, check=False)
    assert proc.returncode == 250, proc.stderr.decode()  # the reply's diff is a warning
    report = json.loads((out / "report.json").read_text())
    [apply] = [s for s in report["stages"] if s["name"] == "apply"]
    assert apply["data"]["thread_revision"] == 2
    assert [i["subject"] for i in apply["data"]["ignored"]] == [
        "Re: [PATCH v2 3/4] virtio-mem: Add memory with MHP_DRIVER_MANAGED"]
    assert (out / "stdin.mbox").read_bytes() == cases.with_fixup_reply().encode()
    assert apply["reproducer"] == f"kseries apply --mbox {out / 'stdin.mbox'}"


@pytest.mark.parametrize(("name", "text", "needles"), [
    ("partial", cases.partial(3), ("patch 3/4 missing",)),
    ("duplicate", cases.duplicate(2), ("two messages numbered 2/4",)),
])
def test_broken_thread_is_one_line_and_touches_nothing(real_tree: Tree, tmp_path: Path,
                                                       name: str, text: str,
                                                       needles: tuple[str, ...]) -> None:
    source = tmp_path / f"{name}.mbox"
    source.write_text(text)
    head, status = git(real_tree.path, "rev-parse", "HEAD"), git(real_tree.path, "status",
                                                                  "--porcelain")
    assert_one_line_error(run_cli("apply", "--mbox", source), *needles)
    assert git(real_tree.path, "rev-parse", "HEAD") == head
    assert git(real_tree.path, "status", "--porcelain") == status
