"""The caller checker on the real 6.12 tree and mutants of it.

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

from kseries.kernel.tree import Tree
from kseries.stages.callers.api import changed_api
from kseries.stages.callers.check import check_callers, cross_check
from kseries.stages.callers.model import CallerReport, Finding
from kseries.stages.callers.spatch import second_opinion
from kseries.stages.callers.spec import spec_from_api
from tests.callers_data import SPEC, mail, mail_diffs, patch_diffs
from tests.conftest import git

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
def test_mutant_prototype_change_from_a_series(base_mutant: Mutant, tmp_path: Path) -> None:
    mutant = base_mutant
    mutant.edit("include/linux/memory_hotplug.h",
                "extern int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags);",
                "extern int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags,\n"
                "\t\t      const char *name);")
    mutant.edit("include/linux/memory_hotplug.h", "#define MHP_OFFLINE_INACCESSIBLE",
                "#define MHP_KSERIES_TEST\t((__force mhp_t)BIT(7))\n"
                "#define MHP_OFFLINE_INACCESSIBLE")
    diffs = mail_diffs(tmp_path, mail(git(mutant.root, "diff", "--",
                                          "include/linux/memory_hotplug.h") + "\n"))
    report = check_callers(mutant.root, SPEC, diffs)
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
    api = changed_api(patch_diffs(mbox))
    assert "MHP_DRIVER_MANAGED" in api.new_constants


@pytest.fixture(scope="module")
def series_applied(real_tree: Tree) -> Path:
    """The current revision (series.toml) applied by kseries in its scratch worktree."""
    from kseries.kernel.tree import cache_dir
    from kseries.series.apply import apply_series
    from kseries.series.config import load_series

    config = load_series()
    applied = apply_series(real_tree, config.revision().mbox, cache_dir(),
                           config.name, config.current)
    return applied.worktree


@pytest.mark.realtree
def test_series_converts_every_caller(series_applied: Path) -> None:
    """With the series, the 8 callers of 6.12 are all converted and the invariants hold;
    v3's KUnit suite is a caller too."""
    from kseries.series.config import load_series

    config = load_series()
    spec = spec_from_api(config.api)
    report = check_callers(series_applied, spec, patch_diffs(config.revision().mbox))
    assert report.findings == ()
    callers = set(report.caller_files) - {"mm/memory_hotplug.c"}
    assert callers == {"mm/memory_hotplug_kunit.c",
        "arch/powerpc/platforms/pseries/hotplug-memory.c", "drivers/acpi/acpi_memhotplug.c",
        "drivers/base/memory.c", "drivers/s390/char/sclp_cmd.c", "drivers/hv/hv_balloon.c",
        "drivers/xen/balloon.c", "drivers/virtio/virtio_mem.c", "drivers/dax/kmem.c"}
    assert all(report.status(call) == "converted" for call in report.calls)
    assert report.changed_api is not None
    assert "MHP_DRIVER_MANAGED" in report.changed_api.new_constants
    assert report.changed_api.function("register_memory_resource") is not None
