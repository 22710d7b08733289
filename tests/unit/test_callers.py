"""The caller checker: a small synthetic kernel, then the real 6.12 tree and mutants of it.

Real-tree tests use the imported 6.12.117 tree (base) and the series applied to it (mutants
are small edits on top of the series, or of the base where a test plays the series); they never
modify the tree: mutants live in a fresh detached worktree of it in a temporary directory,
holding only the files the tests need (so it takes seconds, not minutes, to create).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.kernel.tree import Tree
from kseries.series.config import Api, Invariant
from kseries.stages.callers.checker import (
    CallerCheckSpec,
    CallerReport,
    Finding,
    changed_api,
    check_callers,
    cross_check,
    mbox_diffs,
    second_opinion,
    spec_from_api,
)
from tests.conftest import FIXTURES, ROOT, git
from tools.bench.callers import bench_callers

FAMILY = ("add_memory", "__add_memory", "add_memory_resource", "add_memory_driver_managed")
SPEC = CallerCheckSpec(FAMILY, "mhp_t", "MHP_",
                       ("drivers/virtio/virtio_mem.c", "drivers/dax/kmem.c"),
                       "MHP_DRIVER_MANAGED", "mm/memory_hotplug.c")

HEADER = """#ifndef _LINUX_MEMORY_HOTPLUG_H
#define _LINUX_MEMORY_HOTPLUG_H
typedef int __bitwise mhp_t;
#define MHP_NONE		((__force mhp_t)0)
#define MHP_MERGE_RESOURCE	((__force mhp_t)BIT(0))
#define MHP_DRIVER_MANAGED	((__force mhp_t)BIT(4))
extern int __add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags);
extern int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags);
extern int add_memory_resource(int nid, struct resource *resource,
				mhp_t mhp_flags);
extern int add_memory_driver_managed(int nid, u64 start, u64 size,
					const char *resource_name,
					mhp_t mhp_flags);
#endif
"""
CORE = """#include <linux/memory_hotplug.h>

static struct resource *register_memory_resource(u64 start, u64 size,
							const char *resource_name)
{
	unsigned long flags = IORESOURCE_SYSTEM_RAM;

	if (strcmp(resource_name, "System RAM"))
		flags |= IORESOURCE_SYSRAM_DRIVER_MANAGED;
	return request(start, size, resource_name, flags);
}

int add_memory_resource(int nid, struct resource *res, mhp_t mhp_flags)
{
	if (!strcmp(res->name, "System RAM"))
		firmware_map_add_hotplug(res->start, res->end, "System RAM");
	if (str_has_prefix(res->name, "System RAM ("))
		pr_info("named\\n");
	return 0;
}

int __add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags)
{
	struct resource *res = register_memory_resource(start, size, "System RAM");

	return add_memory_resource(nid, res, mhp_flags);
}

int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags)
{
	return __add_memory(nid, start, size, mhp_flags);
}
EXPORT_SYMBOL_GPL(add_memory);

int add_memory_driver_managed(int nid, u64 start, u64 size,
				const char *resource_name, mhp_t mhp_flags)
{
	if (!resource_name || strstr(resource_name, "System RAM (") != resource_name)
		return -EINVAL;
	return add_memory_resource(nid, NULL, mhp_flags);
}
"""
GOOD = """#include <linux/memory_hotplug.h>
#include "good.h"

#define GOOD_FLAGS (MHP_MERGE_RESOURCE | MHP_NONE)

static int good(struct good_dev *dev, mhp_t extra, bool merge)
{
	mhp_t flags = MHP_NONE, other = MHP_MERGE_RESOURCE;
	int rc;

	rc = add_memory(0, 0, SZ_1G, MHP_NONE);
	rc |= __add_memory(0, 0, SZ_1G, flags | (other));
	rc |= __add_memory(0, 0, SZ_1G, merge ? MHP_MERGE_RESOURCE | extra : MHP_NONE);
	rc |= add_memory(0, 0, SZ_1G, dev->cfg.mhp_flags);
	rc |= add_memory(0, 0, SZ_1G, (__force mhp_t)MHP_NONE);
	rc |= add_memory(0, 0, SZ_1G, GOOD_FLAGS);
	return rc;
}
"""
GOOD_H = "struct good_cfg {\n\tmhp_t mhp_flags;\n};\n"
BAD = """#include <linux/memory_hotplug.h>

static int (*hook)(int, u64, u64, mhp_t) = add_memory;

static int bad(unsigned long raw)
{
	mhp_t zero = 0, maybe = raw ? MHP_NONE : 0;
	int rc;

	rc = add_memory(0, 0, SZ_1G, 0);
	rc |= add_memory(0, 0, SZ_1G);
	rc |= add_memory(0, 0, SZ_1G, raw);
	rc |= add_memory(0, 0, SZ_1G, MHP_NONE | 4);
	rc |= add_memory(0, 0, SZ_1G, zero);
	rc |= add_memory(0, 0, SZ_1G, raw > 1 ? maybe : MHP_NONE);
	return rc;
}
"""
VIRTIO = """#include <linux/memory_hotplug.h>
#define VIRTIO_MEM_FLAGS (MHP_MERGE_RESOURCE | MHP_DRIVER_MANAGED)

static int virtio_mem_add(u64 addr, u64 size)
{
	return add_memory_driver_managed(0, addr, size, "System RAM (virtio_mem)",
						VIRTIO_MEM_FLAGS);
}
"""
KMEM = """#include <linux/memory_hotplug.h>

static int kmem_probe(u64 start, u64 size)
{
	mhp_t mhp_flags;

	mhp_flags = MHP_MERGE_RESOURCE;
	return add_memory_driver_managed(0, start, size, "System RAM (kmem)", mhp_flags);
}
"""
GUARDED = """#include <linux/memory_hotplug.h>

static int guarded(int nid)
{
	int ret;

	with_lock(&dm_lock) {
		ret = add_memory(nid, 0, SZ_1G, MHP_NONE);
	}
	return ret;
}
"""
SYNTHETIC = {
    "include/linux/memory_hotplug.h": HEADER,
    "mm/memory_hotplug.c": CORE,
    "drivers/good/good.c": GOOD,
    "drivers/good/good.h": GOOD_H,
    "drivers/bad.c": BAD,
    "drivers/virtio/virtio_mem.c": VIRTIO,
    "drivers/dax/kmem.c": KMEM,
    "Documentation/example.c": "void f(void) { add_memory(0, 0, 0, 0); }\n",
    "tools/testing/user.c": "int main(void) { return add_memory(0, 0, 0, 0); }\n",
    "Kbuild": "obj-y += mm/ drivers/\n",
    "mm/Makefile": "obj-$(CONFIG_MEMORY_HOTPLUG) += memory_hotplug.o\n",
    "drivers/Makefile": ("obj-y += bad.o\nobj-$(CONFIG_GOOD) += good/\n"
                         "obj-$(CONFIG_VIRTIO) += virtio/\nobj-y += dax/\n"),
    "drivers/good/Makefile": "obj-$(CONFIG_GOOD_MEM) += good.o\n",
    "drivers/virtio/Makefile": "obj-$(CONFIG_VIRTIO_MEM) += virtio_mem.o\n",
    "drivers/dax/Makefile": "obj-$(CONFIG_DEV_DAX_KMEM) += kmem.o\n",
}


def make_repo(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(root, "init", "-q", "-b", "master")
    git(root, "add", "-A")
    return root


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("synthetic") / "linux", SYNTHETIC)


@pytest.fixture(scope="module")
def synthetic_report(synthetic: Path) -> CallerReport:
    return check_callers(synthetic, SPEC)


def by_line(report: CallerReport, file: str) -> dict[int, list[tuple[str, str]]]:
    found: dict[int, list[tuple[str, str]]] = {}
    for finding in report.findings:
        if finding.file == file:
            found.setdefault(finding.line, []).append((finding.severity, finding.rule))
    return found


# --- synthetic tree -----------------------------------------------------------------------


def test_prototypes_come_from_the_header(synthetic_report: CallerReport) -> None:
    texts = {p.name: (p.file, p.line, p.text) for p in synthetic_report.prototypes}
    assert texts["add_memory_resource"] == (
        "include/linux/memory_hotplug.h", 9,
        "add_memory_resource(int nid, struct resource *resource, mhp_t mhp_flags)")
    assert texts["add_memory_driver_managed"][2] == (
        "add_memory_driver_managed(int nid, u64 start, u64 size, const char *resource_name, "
        "mhp_t mhp_flags)")


def test_documentation_and_tools_are_not_scanned(synthetic_report: CallerReport) -> None:
    assert not any(f.startswith(("Documentation/", "tools/"))
                   for f in synthetic_report.files_scanned)
    assert synthetic_report.caller_files == (
        "drivers/bad.c", "drivers/dax/kmem.c", "drivers/good/good.c",
        "drivers/virtio/virtio_mem.c", "mm/memory_hotplug.c")


def test_proper_flags_are_converted(synthetic_report: CallerReport) -> None:
    good = [c for c in synthetic_report.calls if c.file == "drivers/good/good.c"]
    assert [c.line for c in good] == [11, 12, 13, 14, 15, 16]
    assert by_line(synthetic_report, "drivers/good/good.c") == {}
    assert {synthetic_report.status(c) for c in good} == {"converted"}


def test_bad_flags_and_argument_counts(synthetic_report: CallerReport) -> None:
    assert by_line(synthetic_report, "drivers/bad.c") == {
        3: [("warning", "address")],
        10: [("error", "flags-literal")],
        11: [("error", "arg-count")],
        12: [("warning", "flags-type")],
        13: [("error", "flags-literal")],
        14: [("error", "flags-literal")],
        15: [("error", "flags-literal")],
    }
    messages = {f.line: f.message for f in synthetic_report.findings if f.file == "drivers/bad.c"}
    assert "integer literal 0" in messages[10]
    assert messages[11].startswith("passes 3 arguments; add_memory(int nid, u64 start")
    assert "cannot prove type: `raw`" in messages[12]
    assert "zero is assigned integer literal 0 at drivers/bad.c:7" in messages[14]
    assert "maybe is assigned integer literal 0 at drivers/bad.c:7" in messages[15]


def test_required_flag_direct_macro_and_variable(synthetic_report: CallerReport) -> None:
    assert by_line(synthetic_report, "drivers/virtio/virtio_mem.c") == {}
    [kmem] = [f for f in synthetic_report.findings if f.file == "drivers/dax/kmem.c"]
    assert (kmem.line, kmem.severity, kmem.rule) == (8, "error", "required-flag")
    assert "does not pass MHP_DRIVER_MANAGED" in kmem.message


def test_name_compares_that_decide_driver_managed_state(synthetic_report: CallerReport) -> None:
    assert by_line(synthetic_report, "mm/memory_hotplug.c") == {
        8: [("error", "name-strcmp")],
        15: [("error", "name-strcmp")],
        17: [("warning", "name-strcmp")],
    }
    assert synthetic_report.notes == (
        "mm/memory_hotplug.c:38: strstr() on resource_name only validates the name "
        "(its branch returns an error)",)


def test_report_json_and_table(synthetic_report: CallerReport) -> None:
    data = synthetic_report.to_json()
    assert data["errors"] == len(synthetic_report.errors) == 8
    statuses = {(c["file"], c["line"]): c["status"] for c in data["calls"]}
    assert statuses[("drivers/bad.c", 10)] == "UNCONVERTED"
    assert statuses[("drivers/good/good.c", 11)] == "converted"
    table = synthetic_report.format_table()
    assert "drivers/bad.c:11" in table and "UNCONVERTED" in table
    row = next(line for line in table.splitlines() if line.startswith("drivers/bad.c:10 "))
    assert row.split()[1:4] == ["bad", "add_memory", "UNCONVERTED"]


def test_cross_check_names_gating_symbols(synthetic: Path,
                                          synthetic_report: CallerReport) -> None:
    compiled = {"drivers/bad.c": ["x86_64"], "mm/memory_hotplug.c": ["x86_64", "arm64"],
                "drivers/virtio/virtio_mem.c": ["x86_64"], "drivers/dax/kmem.c": []}
    found = cross_check(synthetic_report, compiled, synthetic)
    assert [(f.file, f.severity) for f in found] == [("drivers/dax/kmem.c", "warning"),
                                                     ("drivers/good/good.c", "warning")]
    assert "gated by CONFIG_DEV_DAX_KMEM" in found[0].message
    assert "gated by CONFIG_GOOD_MEM, CONFIG_GOOD" in found[1].message


def test_second_opinion_reports_disagreement(tmp_path: Path) -> None:
    if shutil.which("spatch") is None:
        pytest.skip("spatch (coccinelle) is not installed")
    repo = make_repo(tmp_path / "linux", {"include/linux/memory_hotplug.h": HEADER,
                                          "drivers/guarded.c": GUARDED})
    report = check_callers(repo, CallerCheckSpec(FAMILY))
    assert [(c.file, c.line) for c in report.calls] == [("drivers/guarded.c", 8)]
    opinion = second_opinion(report, repo, CallerCheckSpec(FAMILY))
    assert opinion.status == "disagree"
    assert [(f.file, f.line, f.severity, f.message) for f in opinion.findings] == [
        ("drivers/guarded.c", 8, "warning", "spatch did not find this call")]


def test_second_opinion_without_spatch(synthetic: Path, synthetic_report: CallerReport,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    opinion = second_opinion(synthetic_report, synthetic, SPEC)
    assert (opinion.status, opinion.detail) == ("skipped", "skipped: spatch not installed")


def test_not_a_git_checkout_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("void f(void) { add_memory(0, 0, 0, 0); }\n")
    with pytest.raises(KseriesError, match=r"cannot search .* with git grep"):
        check_callers(tmp_path, SPEC)


def test_family_missing_from_the_tree_is_a_one_line_error(synthetic: Path) -> None:
    with pytest.raises(KseriesError, match=r"none of add_pages, remove_memory is declared"):
        check_callers(synthetic, CallerCheckSpec(("add_pages", "remove_memory")))


def test_spec_from_series_api() -> None:
    api = Api(FAMILY, "mhp_t", "MHP_", (
        Invariant("caller-passes-flag", ("drivers/virtio/virtio_mem.c", "drivers/dax/kmem.c"),
                  "MHP_DRIVER_MANAGED"),
        Invariant("no-name-strcmp", ("mm/memory_hotplug.c",), None)))
    assert spec_from_api(api) == SPEC
    with pytest.raises(KseriesError, match="unknown invariant kind 'typo'"):
        spec_from_api(Api(FAMILY, "mhp_t", "MHP_", (Invariant("typo", (), None),)))
    with pytest.raises(KseriesError, match="not a list of C identifiers"):
        spec_from_api(Api(("add memory",), "mhp_t", "MHP_", ()))


# --- what a series changes ----------------------------------------------------------------


def mail(diff: str, subject: str = "[PATCH 1/1] mm: test") -> str:
    return (f"From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\n"
            f"From: Test <test@example.org>\nSubject: {subject}\n\nWhy.\n---\n"
            f" a | 1 +\n\n{diff}-- \n2.39.5\n\n")


def test_changed_api_from_a_synthetic_series(synthetic: Path, tmp_path: Path) -> None:
    work = make_repo(tmp_path / "linux", SYNTHETIC)
    git(work, "commit", "-q", "-m", "base")
    header = work / "include/linux/memory_hotplug.h"
    header.write_text(HEADER.replace(
        "extern int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags);",
        "extern int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags,\n"
        "\t\t      void *data);").replace(
        "#define MHP_DRIVER_MANAGED", "#define MHP_NEW_FLAG\t((__force mhp_t)BIT(5))\n"
        "#define MHP_DRIVER_MANAGED"))
    core = work / "mm/memory_hotplug.c"
    core.write_text(CORE.replace("\tif (!strcmp(res->name, \"System RAM\"))",
                                 "\tif (!(mhp_flags & MHP_DRIVER_MANAGED))"))
    first = git(work, "diff", "--", "include")
    second = git(work, "diff", "--", "mm")
    mbox = mail(first + "\n") + mail(second + "\n", "[PATCH 2/2] mm: body")
    assert len(mbox_diffs(mbox)) == 2
    api = changed_api(mbox)
    assert api.new_constants == ("MHP_NEW_FLAG",)
    add = api.function("add_memory")
    assert add is not None and add.file == "include/linux/memory_hotplug.h"
    assert add.old_params == ("int nid", "u64 start", "u64 size", "mhp_t mhp_flags")
    assert add.new_params == ("int nid", "u64 start", "u64 size", "mhp_t mhp_flags",
                              "void *data")
    assert add.signature_touched and add.params_changed
    body = api.function("add_memory_resource")
    assert body is not None and body.body_touched and not body.signature_touched
    assert body.old_params == body.new_params == ("int nid", "struct resource *res",
                                                  "mhp_t mhp_flags")
    assert {f.name for f in api.functions} == {"add_memory", "add_memory_resource",
                                               "MHP_NEW_FLAG"}
    # The checker run on the changed tree sees the new prototype.
    report = check_callers(work, SPEC, mbox)
    assert report.changed_api == api
    assert ("drivers/good/good.c", 11, "arg-count") in {
        (f.file, f.line, f.rule) for f in report.errors}


def test_changed_api_of_a_comment_only_series() -> None:
    api = changed_api((FIXTURES / "small-series.mbx").read_text())
    assert api.new_constants == () and api.removed_constants == ()
    assert all(not f.signature_touched for f in api.functions)


def test_bench_callers_reports_both_timings(synthetic: Path) -> None:
    result = bench_callers(synthetic, SPEC, rounds=1)
    assert result["check_s"] > 0 and result["git_grep_s"] > 0
    assert result["git_grep_command"].endswith(
        "grep -n -E 'add_memory|__add_memory|add_memory_resource|add_memory_driver_managed'")


# --- the real tree ------------------------------------------------------------------------

BASE_CALLS = {
    ("arch/powerpc/platforms/pseries/hotplug-memory.c", 593, "__add_memory", "dlpar_add_lmb"),
    ("drivers/acpi/acpi_memhotplug.c", 215, "__add_memory", "acpi_memory_enable_device"),
    ("drivers/base/memory.c", 569, "__add_memory", "probe_store"),
    ("drivers/dax/kmem.c", 170, "add_memory_driver_managed", "dev_dax_kmem_probe"),
    ("drivers/hv/hv_balloon.c", 729, "add_memory", "hv_mem_hot_add"),
    ("drivers/s390/char/sclp_cmd.c", 430, "add_memory", "add_memory_merged"),
    ("drivers/virtio/virtio_mem.c", 654, "add_memory_driver_managed", "virtio_mem_add_memory"),
    ("drivers/xen/balloon.c", 323, "add_memory_resource", "reserve_additional_memory"),
    ("mm/memory_hotplug.c", 1615, "add_memory_resource", "__add_memory"),
    ("mm/memory_hotplug.c", 1626, "__add_memory", "add_memory"),
    ("mm/memory_hotplug.c", 1673, "add_memory_resource", "add_memory_driver_managed"),
}
# Paths a mutant worktree holds: the callers' directories, the API, and the makefiles
# kbuild.py walks up through for them.
MUTANT_PATHS = ("Makefile", "Kbuild", "include/linux/memory_hotplug.h", "mm/Makefile",
                "mm/memory_hotplug.c", "drivers/Makefile", "drivers/s390/Makefile",
                "arch/powerpc/Kbuild", "arch/powerpc/Makefile", "arch/powerpc/platforms/Makefile",
                "drivers/acpi", "drivers/hv", "drivers/xen", "drivers/virtio", "drivers/dax",
                "drivers/base", "drivers/s390/char", "arch/powerpc/platforms/pseries")


@pytest.fixture(scope="module")
def base_tree(real_tree: Tree) -> Path:
    """The imported 6.12.117 tree's own checkout: the pristine base (kseries works elsewhere)."""
    return real_tree.path


@pytest.fixture(scope="module")
def base_report(base_tree: Path) -> CallerReport:
    return check_callers(base_tree, SPEC)


@dataclass
class Mutant:
    """A detached worktree of the real tree holding MUTANT_PATHS; edits are undone per test."""

    root: Path
    edited: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    def edit(self, path: str, old: str, new: str) -> int:
        """Replace OLD by NEW once in PATH; return the line where OLD started."""
        target = self.root / path
        text = target.read_text()
        assert old in text, f"{path} no longer contains {old!r}"
        self.edited.append(path)
        target.write_text(text.replace(old, new, 1))
        return text[:text.index(old)].count("\n") + 1

    def add(self, path: str, text: str) -> None:
        (self.root / path).write_text(text)
        git(self.root, "add", "--", path)  # the series commits it; git grep sees tracked files
        self.added.append(path)

    def restore(self) -> None:
        for path in self.added:
            git(self.root, "rm", "-q", "--cached", "-f", "--", path)
            (self.root / path).unlink()
        if self.edited:
            git(self.root, "checkout", "HEAD", "--", *dict.fromkeys(self.edited))
        self.edited.clear()
        self.added.clear()


def mutant_worktree(base_tree: Path, root: Path, commit: str) -> Iterator[Path]:
    git(base_tree, "worktree", "add", "-q", "--no-checkout", "--detach", str(root), commit)
    try:
        git(root, "checkout", "HEAD", "--", *MUTANT_PATHS)
        yield root
    finally:
        git(base_tree, "worktree", "remove", "--force", str(root))


@pytest.fixture(scope="module")
def mutant_root(base_tree: Path, series_applied: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Mutants of our series: a worktree at the head of patches/v2.mbx as kseries applied it."""
    head = git(series_applied, "rev-parse", "HEAD")
    yield from mutant_worktree(base_tree, tmp_path_factory.mktemp("mutants") / "linux", head)


@pytest.fixture(scope="module")
def base_mutant_root(base_tree: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[Path]:
    """Mutants of the base: for series-like edits made by the tests themselves."""
    yield from mutant_worktree(base_tree, tmp_path_factory.mktemp("base-mutants") / "linux",
                               "HEAD")


@pytest.fixture
def mutant(mutant_root: Path) -> Iterator[Mutant]:
    state = Mutant(mutant_root)
    yield state
    state.restore()


@pytest.fixture
def base_mutant(base_mutant_root: Path) -> Iterator[Mutant]:
    state = Mutant(base_mutant_root)
    yield state
    state.restore()


def errors_at(report: CallerReport, file: str) -> list[Finding]:
    return [f for f in report.errors if f.file == file]


@pytest.mark.realtree
def test_base_tree_calls(base_report: CallerReport) -> None:
    found = {(c.file, c.line, c.name, c.function) for c in base_report.calls}
    assert found == BASE_CALLS
    assert set(base_report.caller_files) - {"mm/memory_hotplug.c"} == {
        "arch/powerpc/platforms/pseries/hotplug-memory.c", "drivers/acpi/acpi_memhotplug.c",
        "drivers/base/memory.c", "drivers/s390/char/sclp_cmd.c", "drivers/hv/hv_balloon.c",
        "drivers/xen/balloon.c", "drivers/virtio/virtio_mem.c", "drivers/dax/kmem.c"}
    assert {p.file for p in base_report.prototypes} == {"include/linux/memory_hotplug.h"}


@pytest.mark.realtree
def test_base_tree_findings(base_report: CallerReport) -> None:
    # All callers pass mhp_t flags already; the series' invariants fail on the base tree:
    # MHP_DRIVER_MANAGED does not exist yet and mm/ still compares resource names.
    assert [(f.file, f.line, f.rule) for f in base_report.findings] == [
        ("drivers/dax/kmem.c", 170, "required-flag"),
        ("drivers/virtio/virtio_mem.c", 654, "required-flag"),
        ("mm/memory_hotplug.c", 279, "name-strcmp"),
        ("mm/memory_hotplug.c", 1579, "name-strcmp"),
    ]
    assert all(f.severity == "error" for f in base_report.findings)
    assert base_report.notes == ("mm/memory_hotplug.c:1661: strstr() on resource_name only "
                                 "validates the name (its branch returns an error)",)
    assert {c.kind for c in base_report.uses} == {"declaration", "definition", "export"}


@pytest.mark.realtree
def test_base_tree_second_opinion_agrees(base_report: CallerReport, base_tree: Path) -> None:
    if shutil.which("spatch") is None:
        pytest.skip("spatch (coccinelle) is not installed")
    opinion = second_opinion(base_report, base_tree, SPEC)
    assert opinion.findings == ()
    assert opinion.status == "agree"


@pytest.mark.realtree
def test_base_tree_cross_check(base_report: CallerReport, base_tree: Path) -> None:
    compiled = {f: ["x86_64"] for f in base_report.caller_files}
    compiled["drivers/s390/char/sclp_cmd.c"] = []
    [warning] = cross_check(base_report, compiled, base_tree)
    assert (warning.file, warning.line, warning.severity) == (
        "drivers/s390/char/sclp_cmd.c", 430, "warning")
    assert "gated by CONFIG_S390" in warning.message


@pytest.mark.realtree
def test_mutant_literal_zero_flags(mutant: Mutant) -> None:
    line = mutant.edit("drivers/s390/char/sclp_cmd.c",
                       "block_size,\n\t\t\t   MACHINE_HAS_EDAT1 ?\n\t\t\t   MHP_MEMMAP_ON_MEMORY | "
                       "MHP_OFFLINE_INACCESSIBLE : MHP_NONE);", "block_size, 0);")
    report = check_callers(mutant.root, SPEC)
    [error] = errors_at(report, "drivers/s390/char/sclp_cmd.c")
    assert (error.line, error.function, error.rule) == (line, "add_memory_merged",
                                                        "flags-literal")
    assert error.call_text == "add_memory(0, addr, block_size, 0)"
    [call] = [c for c in report.calls if c.file == "drivers/s390/char/sclp_cmd.c"]
    assert report.status(call) == "UNCONVERTED"


@pytest.mark.realtree
def test_mutant_new_powerpc_caller(mutant: Mutant) -> None:
    mutant.add("arch/powerpc/platforms/pseries/kseries-probe.c",
               "#include <linux/memory_hotplug.h>\n\nint kseries_probe(int nid, u64 base)\n{\n"
               "\treturn __add_memory(nid, base, SZ_256M,\n\t\t\t    MHP_NONE);\n}\n")
    mutant.edit("arch/powerpc/platforms/pseries/Makefile",
                "obj-$(CONFIG_MEMORY_HOTPLUG)\t+= hotplug-memory.o",
                "obj-$(CONFIG_MEMORY_HOTPLUG)\t+= hotplug-memory.o kseries-probe.o")
    report = check_callers(mutant.root, SPEC)
    [call] = [c for c in report.calls if c.file.endswith("kseries-probe.c")]
    assert (call.line, call.function, call.args) == (
        5, "kseries_probe", ("nid", "base", "SZ_256M", "MHP_NONE"))
    assert report.status(call) == "converted"
    compiled = {f: ["x86_64", "arm64", "s390"] for f in report.caller_files}
    compiled["arch/powerpc/platforms/pseries/hotplug-memory.c"] = ["powerpc"]
    del compiled[call.file]
    [warning] = cross_check(report, compiled, mutant.root)
    assert warning.file == call.file
    assert "CONFIG_MEMORY_HOTPLUG, CONFIG_PPC_PSERIES, CONFIG_PPC" in warning.message


@pytest.mark.realtree
def test_mutant_call_over_lines_with_comment_and_nested_macro(mutant: Mutant) -> None:
    """virtio-mem's call of the series, re-spread over lines with a comment and nested
    macros in its arguments: the same five arguments, still converted."""
    line = mutant.edit(
        "drivers/virtio/virtio_mem.c",
        "rc = add_memory_driver_managed(vm->mgid, addr, size, vm->resource_name,\n"
        "\t\t\t\t       MHP_MERGE_RESOURCE | MHP_NID_IS_MGID |\n"
        "\t\t\t\t       MHP_DRIVER_MANAGED);",
        "rc = add_memory_driver_managed(vm->mgid, /* group, not a node (\"nid\") */\n"
        "\t\t\t\t       addr,\n"
        "\t\t\t\t       min_t(u64, size, ALIGN(size, memory_block_size_bytes())),\n"
        "\t\t\t\t       vm->resource_name, MHP_MERGE_RESOURCE |\n"
        "\t\t\t\t       MHP_NID_IS_MGID | /* kexec: hands off */\n"
        "\t\t\t\t       MHP_DRIVER_MANAGED);")
    report = check_callers(mutant.root, SPEC)
    [call] = [c for c in report.calls if c.file == "drivers/virtio/virtio_mem.c"]
    assert (call.line, call.function) == (line, "virtio_mem_add_memory")
    assert len(call.args) == 5
    assert call.args[:2] == ("vm->mgid", "addr")
    assert call.args[2] == "min_t(u64, size, ALIGN(size, memory_block_size_bytes()))"
    assert call.args[3] == "vm->resource_name"
    assert " ".join(call.args[4].split()) == \
        "MHP_MERGE_RESOURCE | MHP_NID_IS_MGID | MHP_DRIVER_MANAGED"
    assert report.status(call) == "converted"
    assert errors_at(report, "drivers/virtio/virtio_mem.c") == []


@pytest.mark.realtree
def test_mutant_if_0_and_comment_are_not_calls(mutant: Mutant) -> None:
    anchor = "\t\tret = add_memory(nid, PFN_PHYS((start_pfn)),"
    line = mutant.edit("drivers/hv/hv_balloon.c", anchor,
                       "#if 0\n\t\tret = add_memory(nid, 0, 0, 0);\n#endif\n"
                       "\t\t/* ret = add_memory(nid, 0, 0, 0); */\n"
                       "\t\t// ret = add_memory(nid, 0, 0);\n" + anchor)
    report = check_callers(mutant.root, SPEC)
    hv = [(c.line, c.kind) for c in report.calls if c.file == "drivers/hv/hv_balloon.c"]
    assert hv == [(line + 5, "call")]
    assert errors_at(report, "drivers/hv/hv_balloon.c") == []


@pytest.mark.realtree
def test_mutant_wrong_argument_count(mutant: Mutant) -> None:
    line = mutant.edit("drivers/base/memory.c",
                       "\tret = __add_memory(nid, phys_addr,\n"
                       "\t\t\t   MIN_MEMORY_BLOCK_SIZE * sections_per_block,\n",
                       "\tret = __add_memory(nid, phys_addr,\n")
    report = check_callers(mutant.root, SPEC)
    [error] = errors_at(report, "drivers/base/memory.c")
    assert (error.line, error.function, error.rule) == (line, "probe_store", "arg-count")
    assert re.match(r"passes 3 arguments; __add_memory\(int nid, u64 start, u64 size, "
                    r"mhp_t mhp_flags\) at include/linux/memory_hotplug\.h:\d+ takes 4",
                    error.message), error.message


@pytest.mark.realtree
def test_mutant_flags_of_unknown_type_and_of_mhp_t(mutant: Mutant) -> None:
    mutant.edit("drivers/xen/balloon.c", "rc = add_memory_resource(nid, resource, "
                "MHP_MERGE_RESOURCE);", "rc = add_memory_resource(nid, resource, xen_flags);")
    line = mutant.edit("drivers/xen/balloon.c", "static struct resource *additional_memory_"
                       "resource(", "static unsigned long xen_flags;\n"
                       "static struct resource *additional_memory_resource(")
    report = check_callers(mutant.root, SPEC)
    [warning] = [f for f in report.warnings if f.file == "drivers/xen/balloon.c"]
    assert (warning.line, warning.rule) == (324, "flags-type")
    assert "cannot prove type: `xen_flags`" in warning.message
    mutant.edit("drivers/xen/balloon.c", "static unsigned long xen_flags;",
                "static mhp_t xen_flags = MHP_MERGE_RESOURCE;")
    report = check_callers(mutant.root, SPEC)
    assert [f for f in report.findings if f.file == "drivers/xen/balloon.c"] == []
    assert line < 324


@pytest.mark.realtree
def test_mutant_series_invariants_pass(base_mutant: Mutant) -> None:
    mutant = base_mutant
    mutant.edit("drivers/virtio/virtio_mem.c", "\t\t\t\t       MHP_MERGE_RESOURCE | "
                "MHP_NID_IS_MGID);", "\t\t\t\t       VIRTIO_MEM_MHP_FLAGS);")
    mutant.edit("drivers/virtio/virtio_mem.c", "#include <acpi/acpi_numa.h>\n",
                "#include <acpi/acpi_numa.h>\n\n#define VIRTIO_MEM_MHP_FLAGS (MHP_MERGE_RESOURCE"
                " | MHP_NID_IS_MGID | \\\n\t\t\t      MHP_DRIVER_MANAGED)\n")
    mutant.edit("drivers/dax/kmem.c", "mhp_flags = MHP_NID_IS_MGID;",
                "mhp_flags = MHP_NID_IS_MGID | MHP_DRIVER_MANAGED;")
    mutant.edit("mm/memory_hotplug.c", "if (strcmp(resource_name, \"System RAM\"))",
                "if (!strstarts(resource_name, \"System RAM\") || true)")
    report = check_callers(mutant.root, SPEC)
    assert [(f.file, f.line, f.severity, f.rule) for f in report.findings] == [
        ("mm/memory_hotplug.c", 279, "error", "name-strcmp"),  # still decides, via strstarts
        ("mm/memory_hotplug.c", 1579, "error", "name-strcmp"),
    ]
    mutant.edit("mm/memory_hotplug.c", "if (!strstarts(resource_name, \"System RAM\") || true)",
                "if (mhp_flags & MHP_DRIVER_MANAGED)")
    report = check_callers(mutant.root, SPEC)
    assert [(f.file, f.line) for f in report.findings] == [("mm/memory_hotplug.c", 1579)]


@pytest.mark.realtree
def test_mutant_prototype_change_from_a_series(base_mutant: Mutant) -> None:
    mutant = base_mutant
    mutant.edit("include/linux/memory_hotplug.h",
                "extern int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags);",
                "extern int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags,\n"
                "\t\t      const char *name);")
    mutant.edit("include/linux/memory_hotplug.h", "#define MHP_OFFLINE_INACCESSIBLE",
                "#define MHP_KSERIES_TEST\t((__force mhp_t)BIT(7))\n"
                "#define MHP_OFFLINE_INACCESSIBLE")
    mbox = mail(git(mutant.root, "diff", "--", "include/linux/memory_hotplug.h") + "\n")
    report = check_callers(mutant.root, SPEC, mbox)
    assert report.changed_api is not None
    assert report.changed_api.new_constants == ("MHP_KSERIES_TEST",)
    add = report.changed_api.function("add_memory")
    assert add is not None and add.params_changed
    assert add.new_params is not None and add.new_params[-1] == "const char *name"
    arg_count = {(f.file, f.line) for f in report.errors if f.rule == "arg-count"}
    assert arg_count == {("drivers/hv/hv_balloon.c", 729), ("drivers/s390/char/sclp_cmd.c", 430)}
    [mismatch] = [f for f in report.warnings if f.rule == "prototype"]
    assert (mismatch.file, mismatch.line) == ("mm/memory_hotplug.c", 1621)


@pytest.mark.realtree
def test_changed_api_of_the_real_series_if_present() -> None:
    mbox = Path(__file__).resolve().parents[2] / "patches" / "v2.mbx"
    if not mbox.is_file():
        pytest.skip("patches/v2.mbx is not written yet")
    api = changed_api(mbox.read_text())
    assert "MHP_DRIVER_MANAGED" in api.new_constants


@pytest.fixture(scope="module")
def series_applied(real_tree: Tree) -> Path:
    """patches/v2.mbx applied by kseries in its scratch worktree."""
    from kseries.kernel.tree import cache_dir
    from kseries.series.apply import apply_series
    from kseries.series.config import load_series
    from kseries.series.mbox import read_series

    config = load_series()
    applied = apply_series(real_tree, read_series(config.revision().mbox), cache_dir(),
                           config.name, config.current)
    return applied.worktree


@pytest.mark.realtree
def test_series_converts_every_caller(series_applied: Path) -> None:
    """With the series, the 8 callers of 6.12 are all converted and the invariants hold."""
    from kseries.series.config import load_series

    spec = spec_from_api(load_series().api)
    report = check_callers(series_applied, spec, (ROOT / "patches" / "v2.mbx").read_text())
    assert report.findings == ()
    callers = set(report.caller_files) - {"mm/memory_hotplug.c"}
    assert callers == {
        "arch/powerpc/platforms/pseries/hotplug-memory.c", "drivers/acpi/acpi_memhotplug.c",
        "drivers/base/memory.c", "drivers/s390/char/sclp_cmd.c", "drivers/hv/hv_balloon.c",
        "drivers/xen/balloon.c", "drivers/virtio/virtio_mem.c", "drivers/dax/kmem.c"}
    assert all(report.status(call) == "converted" for call in report.calls)
    assert report.changed_api is not None
    assert "MHP_DRIVER_MANAGED" in report.changed_api.new_constants
    assert report.changed_api.function("register_memory_resource") is not None
