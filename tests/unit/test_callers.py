"""The caller checker on a small synthetic kernel.

The real 6.12 tree and mutants of it: tests/real/test_callers_real.py.
"""

from __future__ import annotations

import quopri
import shutil
from pathlib import Path

import pytest

from kseries.core.context import Options, make_context
from kseries.core.errors import KseriesError
from kseries.series.config import Api, Invariant
from kseries.series.mbox import read_series
from kseries.stages.callers.api import changed_api
from kseries.stages.callers.check import check_callers, cross_check
from kseries.stages.callers.model import CallerReport
from kseries.stages.callers.spatch import second_opinion
from kseries.stages.callers.spec import CallerCheckSpec, spec_from_api
from kseries.stages.callers.stage import run_checker
from tests.callers_data import FAMILY, SPEC, mail, mail_diffs, patch_diffs
from tests.conftest import FIXTURES, git
from tools.bench.callers import bench_callers

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
    diffs = mail_diffs(tmp_path, mail(first + "\n"), mail(second + "\n", "[PATCH 2/2] mm: body"))
    assert len(diffs) == 2
    api = changed_api(diffs)
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
    report = check_callers(work, SPEC, diffs)
    assert report.changed_api == api
    assert ("drivers/good/good.c", 11, "arg-count") in {
        (f.file, f.line, f.rule) for f in report.errors}


def test_changed_api_of_a_comment_only_series() -> None:
    api = changed_api(patch_diffs(FIXTURES / "small-series.mbx"))
    assert api.new_constants == () and api.removed_constants == ()
    assert all(not f.signature_touched for f in api.functions)


NEW_FLAG_DIFF = """diff --git a/include/linux/memory_hotplug.h b/include/linux/memory_hotplug.h
index 1111111..2222222 100644
--- a/include/linux/memory_hotplug.h
+++ b/include/linux/memory_hotplug.h
@@ -4,3 +4,4 @@ typedef int __bitwise mhp_t;
 #define MHP_NONE		((__force mhp_t)0)
 #define MHP_MERGE_RESOURCE	((__force mhp_t)BIT(0))
+#define MHP_NEW_FLAG		((__force mhp_t)BIT(5)) /* a comment long enough to be wrapped */
 #define MHP_DRIVER_MANAGED	((__force mhp_t)BIT(4))
"""


def test_a_from_line_in_a_commit_message_does_not_cut_the_patch(synthetic: Path,
                                                                tmp_path: Path) -> None:
    """Prose like "From the spec: ..." in a commit message is not an mbox From line.

    Splitting the mail there would also lose its headers for the rest, here the
    quoted-printable encoding: the diff would keep its soft line breaks and not parse.
    The callers stage takes the patches' diffs from the series as read by series.mbox.
    """
    body = (f"Why.\n\nFrom the spec: flags are {SPEC.flags_type}.\n---\n a | 1 +\n\n"
            f"{NEW_FLAG_DIFF}-- \n2.39.5\n")
    mbox = tmp_path / "series.mbx"
    mbox.write_text("From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\n"
                    "From: Test <test@example.org>\nSubject: [PATCH 1/1] mm: new flag\n"
                    "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
                    "Content-Transfer-Encoding: quoted-printable\n\n"
                    + quopri.encodestring(body.encode()).decode())
    assert "\nFrom the spec: " in mbox.read_text() and "=\n" in mbox.read_text()
    [patch] = read_series(mbox).patches
    assert patch.diff.startswith(NEW_FLAG_DIFF)
    ctx = make_context(Options(series_file=None, cache_dir=tmp_path / "cache", tree=None,
                               revision=None, mbox=mbox, out=tmp_path / "out"))
    _, report = run_checker(synthetic, ctx, [patch.diff], None, with_spatch=False)
    assert report.changed_api is not None
    assert report.changed_api.new_constants == ("MHP_NEW_FLAG",)
    assert [f.name for f in report.changed_api.functions] == ["MHP_NEW_FLAG"]


def test_bench_callers_reports_both_timings(synthetic: Path) -> None:
    result = bench_callers(synthetic, SPEC, rounds=1)
    assert result["check_s"] > 0 and result["git_grep_s"] > 0
    assert result["git_grep_command"].endswith(
        "grep -n -E 'add_memory|__add_memory|add_memory_resource|add_memory_driver_managed'")
