"""The checks stage on the real 6.12 tree with patches/v2.mbx applied, with the tree's own
checkpatch.pl, kernel-doc and get_maintainer.pl; and mutants of the series that each rule
must catch (a patch without Signed-off-by, Fixes: tags good and bad, a broken kernel-doc
comment, a patch that leaves out a maintainer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kseries.core import git as g
from kseries.core.context import Options, make_context
from kseries.core.pipeline import RunState
from kseries.core.report import Check, Stage
from kseries.kernel import maintainers as get_maintainer
from kseries.kernel.tree import Tree, cache_dir
from kseries.series.apply import APPLY_IDENTITY, AppliedPatch, ApplyResult, apply_series
from kseries.series.config import load_series
from kseries.stages.checks import notes
from kseries.stages.checks.stage import ChecksOptions, checks_stage
from tests import thread_cases as cases
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.realtree
PATCHES = (1, 2, 3, 4)
TOUCHED = ("drivers/dax/kmem.c", "drivers/virtio/virtio_mem.c",
           "include/linux/memory_hotplug.h", "mm/memory_hotplug.c")
SOB = "Signed-off-by: Seed 1d42b095 maintainers <maintainers@users.noreply.r-seed-1d42b095.example>"
IMPORT_SUBJECT = "Import linux-source-6.12 6.12.117-1~deb12u1"


@pytest.fixture(scope="module")
def cache() -> Path:
    """The shared cache, for v2, its mutants and v3: its scratch worktree of the tree is warm
    (a new one is an 80k-file checkout). Each run is given the commits it checks."""
    return cache_dir()


def run_checks(tree: Tree, applied: ApplyResult, out: Path,
               options: ChecksOptions | None = None) -> Stage:
    ctx = make_context(Options(series_file=None, cache_dir=None, tree=None, revision=None,
                               mbox=None, out=out))
    return checks_stage(RunState(ctx, tree=tree, applied=applied), options or ChecksOptions())


def by_key(stage: Stage) -> dict[tuple[str, str], Check]:
    return {(str(c.rule), str(c.step)): c for c in stage.checks}


@pytest.fixture(scope="module")
def v2(real_tree: Tree, cache: Path) -> ApplyResult:
    return apply_series(real_tree, load_series().revision("v2").mbox, cache, "checks", "v2")


@pytest.fixture(scope="module")
def v2_stage(real_tree: Tree, v2: ApplyResult,
             tmp_path_factory: pytest.TempPathFactory) -> Stage:
    return run_checks(real_tree, v2, tmp_path_factory.mktemp("v2-out"))


def test_v2_gives_one_check_per_patch_per_rule(v2_stage: Stage) -> None:
    got = {key: c.status for key, c in by_key(v2_stage).items()}
    want = {(rule, f"patch {i}"): status for i in PATCHES
            for rule, status in (("checkpatch", "pass"), ("signoff", "pass"), ("fixes", "pass"),
                                 ("maintainers", "pass"))}
    want |= {("kernel-doc", path): "pass" for path in TOUCHED}
    want[("base-commit", "series")] = "pass"
    assert got == want, [c.summary for c in v2_stage.checks if got[(c.rule, c.step)] !=
                         want.get((str(c.rule), str(c.step)))]
    assert len(v2_stage.checks) == len(want)  # one check per key, no duplicates
    assert v2_stage.status == "pass"
    for check in v2_stage.checks:
        assert check.log is not None and Path(check.log).is_file(), check


def test_v2_findings_read_as_a_maintainer_would(v2_stage: Stage) -> None:
    checks = by_key(v2_stage)
    assert checks[("checkpatch", "patch 1")].summary == "0 errors, 0 warnings, 0 checks"
    assert checks[("fixes", "patch 2")].summary == "no Fixes: tag"
    assert checks[("base-commit", "series")].summary == (
        "base-commit: 8b02695b2f70, the commit it was applied on")
    # v2.mbx carries the To/Cc that kseries export took from get_maintainer.
    routing = checks[("maintainers", "patch 1")]
    assert routing.summary == "all 5 named by get_maintainer are in To/Cc"
    assert "Andrew Morton <akpm@linux-foundation.org> (maintainer:MEMORY MANAGEMENT" in \
        " ".join(routing.data["named"])
    assert any("mst@redhat.com" in n for n in checks[("maintainers", "patch 3")].data["named"])
    doc = checks[("kernel-doc", "mm/memory_hotplug.c")]
    assert doc.data["new"] == [] and doc.data["head"] >= doc.data["base"]


def test_maintainers_notes_hold_the_generated_section(real_tree: Tree, cache: Path,
                                                      tmp_path: Path) -> None:
    """MAINTAINERS-notes.md's routing table is this stage's output for the current revision
    (v3), not typed by hand."""
    config = load_series()
    applied = apply_series(real_tree, config.revision().mbox, cache, "checks", config.current)
    stage = run_checks(real_tree, applied, tmp_path)
    text = (ROOT / "MAINTAINERS-notes.md").read_text()
    start = text.index(notes.BEGIN) + len(notes.BEGIN) + 1
    assert text[start:text.index(notes.END)] == "\n".join(notes.section(stage)) + "\n"


def mutant_thread() -> str:
    """v2 with patch 3's Signed-off-by removed and Fixes: tags added: malformed on patch 1,
    naming the tree's own commit on patch 2, an upstream commit the tree lacks on patch 4."""
    parts = cases.messages(cases.v2_text())
    tags = {1: 'Fixes: 8b02695b2f70 "no parentheses"',
            2: f'Fixes: 8b02695b2f70 ("{IMPORT_SUBJECT}")',
            4: 'Fixes: 0123456789ab ("mm/memory_hotplug: an upstream commit")'}
    for index, tag in tags.items():
        parts[index] = parts[index].replace(f"\n{SOB}\n", f"\n{tag}\n{SOB}\n", 1)
    parts[3] = parts[3].replace(f"\n{SOB}\n", "\n", 1)
    return "".join(parts)


def test_mutant_signoff_and_fixes_are_caught(real_tree: Tree, cache: Path,
                                             tmp_path: Path) -> None:
    source = tmp_path / "mutant.mbox"
    source.write_text(mutant_thread())
    applied = apply_series(real_tree, source, cache, "checks", "mutant")
    checks = by_key(run_checks(real_tree, applied, tmp_path / "out"))
    assert checks[("signoff", "patch 3")].status == "fail"
    assert checks[("checkpatch", "patch 3")].status == "fail"  # checkpatch agrees
    assert "Missing Signed-off-by" in checks[("checkpatch", "patch 3")].summary
    assert checks[("fixes", "patch 1")].status == "fail"
    assert "malformed" in checks[("fixes", "patch 1")].summary
    assert checks[("fixes", "patch 2")].status == "pass"
    assert checks[("fixes", "patch 4")].status == "warn"
    assert "one-commit import" in checks[("fixes", "patch 4")].summary
    # checkpatch's "Unknown commit id" for that Fixes: says nothing in a tree without
    # history: not counted, but named (real checkpatch wording, real tree)
    assert checks[("checkpatch", "patch 4")].status == "pass"
    assert ("0 errors, 0 warnings, 0 checks; 1 commit ids not checked: the tree has no "
            "history") in checks[("checkpatch", "patch 4")].summary
    assert checks[("signoff", "patch 1")].status == "pass"


@pytest.fixture
def broken_doc(v2: ApplyResult) -> Iterator[ApplyResult]:
    """v2 plus a fifth commit that renames a documented parameter in a kernel-doc comment."""
    worktree = v2.worktree
    g.force_checkout(worktree, v2.head)
    source = worktree / "mm" / "memory_hotplug.c"
    text = source.read_text()
    assert " * @mhp_flags: %MHP_* flags\n" in text
    source.write_text(text.replace(" * @mhp_flags: %MHP_* flags\n", " * @flags: %MHP_* flags\n",
                                   1))
    g.run_git(worktree, "commit", "-q", "-a", "-m", "mm: break a kernel-doc comment",
              config=APPLY_IDENTITY)
    head = g.git(worktree, "rev-parse", "HEAD")
    yield replace(v2, head=head,
                  patches=(*v2.patches, AppliedPatch(5, "mm: break a kernel-doc comment", head)))
    g.force_checkout(worktree, v2.head)


def test_mutant_kernel_doc_comment_is_a_new_warning(real_tree: Tree, broken_doc: ApplyResult,
                                                    tmp_path: Path) -> None:
    checks = by_key(run_checks(real_tree, broken_doc, tmp_path / "out"))
    doc = checks[("kernel-doc", "mm/memory_hotplug.c")]
    assert doc.status == "warn", doc.summary
    assert any("'mhp_flags' not described in 'add_memory_resource'" in m
               for m in doc.data["new"]), doc.data
    assert any("Excess function parameter 'flags'" in m for m in doc.data["new"]), doc.data
    assert checks[("kernel-doc", "include/linux/memory_hotplug.h")].status == "pass"


def with_recipients(applied: ApplyResult, stage: Stage, drop: str = "") -> ApplyResult:
    """APPLIED as if each patch alone had been mailed to what get_maintainer named, minus
    DROP (no Cc, no cover letter recipients: v2.mbx's own To/Cc would hide the drop)."""
    assert applied.series is not None
    answers = {int(c.data["patch"]): get_maintainer.parse("\n".join(c.data["named"]))
               for c in stage.checks if c.rule == "maintainers"}
    patches = tuple(replace(p, to=tuple(n.who for n in answers[p.index]
                                        if n.address != drop), cc=())
                    for p in applied.series.patches)
    return replace(applied, series=replace(applied.series, patches=patches, cover_to=(),
                                           cover_cc=()))


def test_mutant_missing_maintainer_warns_naming_who(real_tree: Tree, v2: ApplyResult,
                                                    v2_stage: Stage, tmp_path: Path) -> None:
    routed = by_key(run_checks(real_tree, with_recipients(v2, v2_stage), tmp_path / "all"))
    assert {routed[("maintainers", f"patch {i}")].status for i in PATCHES} == {"pass"}
    short = by_key(run_checks(real_tree, with_recipients(v2, v2_stage, "akpm@linux-foundation.org"),
                              tmp_path / "short"))
    check = short[("maintainers", "patch 1")]
    assert check.status == "warn"
    assert check.summary.endswith("not in To/Cc: Andrew Morton <akpm@linux-foundation.org>")
    assert short[("maintainers", "patch 3")].status == "pass"  # akpm is not named for virtio


def test_kseries_checks_command_on_the_default_tree(tmp_path: Path) -> None:
    """`kseries checks` as a user runs it: apply, then the checks, one printed line per check,
    the report holds them. The current revision is clean but for one warning: patch 1's Fixes:
    commit cannot be looked up in a tree imported without history (exit 250, NIPA's warning)."""
    result = run_cli("checks", "--out", tmp_path / "out")
    assert result.returncode == 250, result.stdout + result.stderr
    rules = {"checkpatch", "signoff", "fixes", "maintainers", "kernel-doc", "base-commit"}
    lines = [line.split() for line in result.stdout.splitlines()]
    warned = [" ".join(w) for w in lines if len(w) > 2 and w[0] == "WARN" and w[1] in rules]
    assert len(warned) == 1 and warned[0].split()[1:3] == ["fixes", "patch"], warned
    assert "the tree has no history" in warned[0]
    assert "PASS  maintainers  patch 1" in result.stdout
    assert "PASS  checkpatch   patch 4" in result.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    [stage] = [s for s in report["stages"] if s["name"] == "checks"]
    rules = [c["rule"] for c in stage["checks"]]
    # four patches; v3 touches five files kernel-doc reads (the KUnit file and powerpc's too)
    assert {r: rules.count(r) for r in set(rules)} == {
        "checkpatch": 4, "signoff": 4, "fixes": 4, "maintainers": 4, "kernel-doc": 5,
        "base-commit": 1}
    assert stage["reproducer"].startswith("kseries checks")
