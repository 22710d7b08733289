"""`kseries export` writes To/Cc from the tree's get_maintainer (a stand-in here that answers
from the fixture MAINTAINERS, in the real script's format), and b4 and the checks stage read
the result; the header insertion and folding on their own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kseries.kernel.maintainers import Named, parse
from kseries.series.recipients import Routing, address_mbox, addressed, folded, union
from tests.conftest import assert_one_line_error, git, run_cli
from tests.unit.test_revisions import make_workspace

# Each 'DIR: answer' line of MAINTAINERS is printed for a patch that touches DIR/: the real
# script's output format, and an answer that depends on the tree the script runs in.
GET_MAINTAINER = r"""
my $text = do { local $/; <STDIN> };
open(my $m, '<', 'MAINTAINERS') or die "get_maintainer: no MAINTAINERS here\n";
while (my $line = <$m>) {
    my ($dir, $answer) = $line =~ /^(\S+): (.*)$/ or next;
    print "$answer\n" if $text =~ m{^\+\+\+ b/\Q$dir\E/}m;
}
"""
MAINTAINERS = """\
mm: Mai Ntainer <maint@example.org> (maintainer:MEMORY HOT(UN)PLUG)
mm: Rev Iewer <rev@example.org> (reviewer:MEMORY HOT(UN)PLUG)
mm: linux-mm@kvack.org (open list:MEMORY MANAGEMENT)
drivers: "Vir T. Io" <virt@example.org> (maintainer:VIRTIO CORE)
drivers: Eugenio Pérez <eperezma@example.org> (reviewer:VIRTIO CORE)
drivers: Mai Ntainer <maint@example.org> (reviewer:VIRTIO CORE)
drivers: virtualization@lists.linux.dev (open list:VIRTIO CORE)
drivers: Test Author <test@example.org> (maintainer:VIRTIO CORE)
"""
MM_TO = "To: Mai Ntainer <maint@example.org>\nCc: Rev Iewer <rev@example.org>, linux-mm@kvack.org\n"
DRIVERS_TO = ('To: "Vir T. Io" <virt@example.org>\n'
              "Cc: =?UTF-8?q?Eugenio_P=C3=A9rez?= <eperezma@example.org>,\n"
              " Mai Ntainer <maint@example.org>, virtualization@lists.linux.dev\n")


@pytest.fixture
def ws(small_repo: Path, tmp_path: Path) -> dict[str, Path]:
    """make_workspace's branch 'work' (two mm/ patches) plus a third on drivers/, in a tree
    with the stand-in scripts/get_maintainer.pl and MAINTAINERS."""
    (small_repo / "scripts").mkdir()
    (small_repo / "scripts" / "get_maintainer.pl").write_text(GET_MAINTAINER)
    (small_repo / "MAINTAINERS").write_text(MAINTAINERS)
    (small_repo / "drivers").mkdir()
    (small_repo / "drivers" / "b.c").write_text("int b;\n")
    git(small_repo, "add", "-A")
    git(small_repo, "commit", "-q", "-m", "tree: scripts and MAINTAINERS")
    workspace = make_workspace(small_repo, tmp_path)
    git(small_repo, "checkout", "-q", "work")
    (small_repo / "drivers" / "b.c").write_text("long b;\n")
    git(small_repo, "commit", "-q", "-am", "virtio: long b", "-m", "Why: tests.", "-s")
    git(small_repo, "checkout", "-q", "master")
    return workspace


def export(ws: dict[str, Path], *extra: str) -> tuple[str, str]:
    result = run_cli("export", "--branch", "work", "--as", "v1", "--base", "master",
                     "--force", *extra, "--tree", ws["repo"], "--series", ws["series"],
                     "--cache-dir", ws["cache"])
    assert result.returncode == 0, result.stderr
    return (ws["series"].parent / "v1.mbx").read_text(), result.stdout


def heads(mbox: str) -> list[str]:
    """Each message's To/Cc lines (with their continuations)."""
    return ["".join(re.findall(r"^(?:To|Cc): .*\n(?:[ \t].*\n)*", m.partition("\n\n")[0] + "\n",
                               re.MULTILINE))
            for m in re.split(r"(?m)^(?=From 0{40} )", mbox) if m]


def test_export_routes_each_patch_and_the_cover_gets_the_union(ws: dict[str, Path]) -> None:
    mbox, out = export(ws)
    cover, one, two, three = heads(mbox)
    assert one == two == MM_TO
    # The sender (Test Author, a maintainer of drivers/ here) gets no copy of their own.
    assert three == DRIVERS_TO
    # To: every patch's maintainers; Cc: everyone else, minus those already in To.
    assert cover == ('To: Mai Ntainer <maint@example.org>, "Vir T. Io" <virt@example.org>\n'
                     "Cc: Rev Iewer <rev@example.org>, linux-mm@kvack.org,\n"
                     " =?UTF-8?q?Eugenio_P=C3=A9rez?= <eperezma@example.org>,\n"
                     " virtualization@lists.linux.dev\n")
    # Where git format-patch --to/--cc puts them: right after Subject.
    assert re.search(r"^Subject: \[PATCH v1 1/3\] .*\nTo: Mai", mbox, re.MULTILINE)
    assert "note:" not in out
    assert export(ws)[0] == mbox  # the same tree gives the same bytes


def test_no_recipients_writes_none(ws: dict[str, Path]) -> None:
    mbox, out = export(ws, "--no-recipients")
    assert heads(mbox) == ["", "", "", ""] and "note:" not in out


@pytest.mark.parametrize("gone", ["scripts/get_maintainer.pl", "MAINTAINERS"])
def test_a_tree_without_get_maintainer_is_one_note(ws: dict[str, Path], gone: str) -> None:
    (ws["repo"] / gone).unlink()
    mbox, out = export(ws)
    assert heads(mbox) == ["", "", "", ""]
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and f"no To/Cc written: the tree has no {gone}" in notes[0]


def test_get_maintainer_runs_where_the_branch_is_checked_out(ws: dict[str, Path],
                                                             tmp_path: Path) -> None:
    edit = tmp_path / "edit"
    git(ws["repo"], "worktree", "add", "-q", str(edit), "work")
    (edit / "MAINTAINERS").write_text("mm: Other One <other@example.org> (maintainer:MM)\n")
    _cover, one, _two, three = heads(export(ws)[0])
    assert one == "To: Other One <other@example.org>\n" and three == ""


def test_a_failing_get_maintainer_is_one_line_and_writes_nothing(ws: dict[str, Path]) -> None:
    (ws["repo"] / "scripts" / "get_maintainer.pl").write_text('die "boom\\n";\n')
    result = run_cli("export", "--branch", "work", "--as", "v1", "--base", "master",
                     "--tree", ws["repo"], "--series", ws["series"], "--cache-dir", ws["cache"])
    assert_one_line_error(result, "get_maintainer.pl failed on patch 1", "boom")
    assert not (ws["series"].parent / "v1.mbx").exists()


def test_b4_and_the_maintainers_rule_read_the_export(ws: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """The checks stage applies the export with b4 am (offline) and finds everyone routed."""
    export(ws)
    out = tmp_path / "out"
    result = run_cli("checks", "--tree", ws["repo"], "--mbox", ws["series"].parent / "v1.mbx",
                     "--cache-dir", ws["cache"], "--out", out)
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads((out / "report.json").read_text())
    apply = next(s for s in report["stages"] if s["name"] == "apply")
    assert apply["status"] == "pass", apply["summary"]
    checks = next(s for s in report["stages"] if s["name"] == "checks")["checks"]
    routed = {c["step"]: (c["status"], c["summary"]) for c in checks
              if c["rule"] == "maintainers"}
    assert routed == {
        "patch 1": ("pass", "all 3 named by get_maintainer are in To/Cc"),
        "patch 2": ("pass", "all 3 named by get_maintainer are in To/Cc"),
        "patch 3": ("pass", "all 5 named by get_maintainer are in To/Cc")}


def named(*lines: str) -> list[Named]:
    return parse("\n".join(lines))


def test_headers_fold_at_commas_below_78_columns() -> None:
    entries = [f"Person Number{i} <person.number{i}@example.org>" for i in range(4)]
    lines = folded("Cc", entries)
    assert lines == ["Cc: Person Number0 <person.number0@example.org>,",
                     " Person Number1 <person.number1@example.org>,",
                     " Person Number2 <person.number2@example.org>,",
                     " Person Number3 <person.number3@example.org>"]
    short = folded("To", [f"l{i}@example.org" for i in range(12)])
    assert all(len(line) < 78 for line in short) and len(short) == 3
    assert "".join(short) == "To: " + ", ".join(f"l{i}@example.org" for i in range(12))
    assert folded("To", ["x" * 90]) == ["To: " + "x" * 90]  # too long for any line: alone


def test_headers_go_after_a_folded_subject_and_join_existing_ones() -> None:
    message = ("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
               "From: Me <me@example.org>\nSubject: [PATCH] a long\n subject\n"
               "Cc: Already <already@example.org>\nMIME-Version: 1.0\n\nbody\n\nmore\n")
    route = Routing(tuple(named("A <a@example.org> (maintainer:X)")),
                    tuple(named("Already <already@example.org> (reviewer:X)",
                                "l@example.org (open list:X)")))
    assert addressed(message, route) == (
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: Me <me@example.org>\nSubject: [PATCH] a long\n subject\n"
        "To: A <a@example.org>\n"
        "Cc: Already <already@example.org>,\n l@example.org\nMIME-Version: 1.0\n\n"
        "body\n\nmore\n")


def test_cover_union_keeps_first_order_and_takes_to_out_of_cc() -> None:
    first = Routing(tuple(named("A <a@x.org> (maintainer:X)")),
                    tuple(named("B <b@x.org> (reviewer:X)", "l@x.org (open list:X)")))
    second = Routing(tuple(named("B <b@x.org> (maintainer:Y)", "A <a@x.org> (maintainer:Y)")),
                     tuple(named("m@x.org (open list:Y)", "l@x.org (open list:X)")))
    both = union([first, second], sender="")
    assert [n.address for n in both.to] == ["a@x.org", "b@x.org"]
    assert [n.address for n in both.cc] == ["l@x.org", "m@x.org"]


def test_address_mbox_asks_per_patch_only() -> None:
    start = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
    mbox = (f"{start}From: Me <me@x.org>\nSubject: [PATCH 0/1] c\n\ncover\n\n"
            f"{start}From: Me <me@x.org>\nSubject: [PATCH 1/1] p\n\nmsg\n---\n"
            "diff --git a/mm/a.c b/mm/a.c\n")
    asked: list[int] = []

    def ask(number: int, message: str) -> list[Named]:
        asked.append(number)
        assert "diff --git" in message
        return named("A <a@x.org> (maintainer:X)", "Me <me@x.org> (reviewer:X)")

    result = address_mbox(mbox, ask)
    assert asked == [1]
    assert result.count("To: A <a@x.org>\n") == 2 and "Cc:" not in result
