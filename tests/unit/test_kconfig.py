"""kconfig.py: fragments, defconfig + fragments + olddefconfig with a stamp, kconfiglib checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.kernel.arches import get_arch
from kseries.kernel.kconfig import (
    FRAGMENTS_DIR,
    MISSING,
    KconfigTree,
    LazyKconfig,
    build_fragments,
    fragment_arches,
    fragment_needs,
    merge_config,
    merge_fragments,
    problems_in,
    read_config_values,
    read_fragment,
    validate_config,
)
from kseries.kernel.tree import Tree, cache_dir
from tests.conftest import git

# -- fragments (no tree needed) ---------------------------------------------------------------


def test_config_values_read_set_and_unset_lines() -> None:
    text = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n# a comment\nCONFIG_D=0x10\n"
    assert read_config_values(text) == {"A": "y", "B": "n", "C": '"x y"', "D": "0x10"}


def test_merge_fragments_replaces_and_appends_last_one_wins(real_tree: Tree,
                                                            tmp_path: Path) -> None:
    """The tree's own merge_config.sh does the merging; nothing is left in its directory."""
    config = tmp_path / ".config"
    config.write_text("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n")
    one, two = tmp_path / "one.config", tmp_path / "two.config"
    one.write_text("CONFIG_B=y\nCONFIG_D=y\n")
    two.write_text("# CONFIG_A is not set\nCONFIG_D=m\n")
    log = merge_fragments(real_tree.path, config, [one, two])
    assert read_config_values(config.read_text()) == {"A": "n", "B": "y", "C": "m", "D": "m"}
    assert config.read_text().count("CONFIG_D") == 1
    assert "merge_config.sh -m" in log and "Value of CONFIG_D is redefined" in log
    assert sorted(p.name for p in tmp_path.iterdir()) == [".config", "one.config", "two.config"]


def test_a_tree_without_merge_config_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / ".config"
    config.write_text("")
    with pytest.raises(KseriesError, match=r"merge_config.sh is missing: .*re-import it"):
        merge_fragments(tmp_path, config, [])


def test_a_kconfig_kconfiglib_cannot_parse_leaves_the_problem_with_a_reason(
        tmp_path: Path) -> None:
    """Newer Kconfig syntax than kconfiglib knows: values that stuck need no kconfiglib at
    all, and one that did not is still reported, its reason saying kconfiglib could not."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n")
    (tree / "Kconfig").write_text('config A\n\tbool "a"\n\tnewfangled keyword\n'
                                  'config B\n\tbool "b"\n')
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    lazy = LazyKconfig(tree, get_arch("x86_64"), tree / ".config")
    assert problems_in(lazy, "CONFIG_A=y\n", {"A": "y"}) == []
    [problem] = problems_in(lazy, "CONFIG_A=y\n", {"A": "y", "B": "y"})
    assert (problem.symbol, problem.wanted, problem.got) == ("B", "y", "n")
    assert problem.reason.startswith("kconfiglib cannot say why (kconfiglib cannot parse")
    [missing] = problems_in(lazy, "", {"C": "y"})
    assert missing.reason == MISSING


def test_garbage_fragment_line_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.config"
    bad.write_text("CONFIG_A=y\nenable memory hotplug please\n")
    with pytest.raises(KseriesError, match="not a Kconfig fragment line: 'enable memory"):
        read_fragment(bad)


def test_build_fragments_per_arch() -> None:
    names = {a: [p.name for p in build_fragments(get_arch(a))]
             for a in ("x86_64", "arm64", "powerpc", "s390")}
    assert names == {
        "x86_64": ["common.config", "virtio-mem.config", "x86_64.config"],
        "arm64": ["common.config", "virtio-mem.config", "arm64.config"],
        "powerpc": ["common.config", "powerpc.config"],
        "s390": ["common.config", "s390.config"],
    }
    assert fragment_arches(FRAGMENTS_DIR / "virtio-mem.config") == ("x86_64", "arm64")


def test_a_needs_fragment_is_merged_only_into_trees_that_define_its_symbol(
        small_repo: Path) -> None:
    """kunit-suite.config: only where a Kconfig declares MEMORY_HOTPLUG_KUNIT_TEST."""
    arch = get_arch("s390")
    assert fragment_needs(FRAGMENTS_DIR / "kunit-suite.config") == "MEMORY_HOTPLUG_KUNIT_TEST"
    without = [p.name for p in build_fragments(arch, tree=small_repo)]
    assert without == ["common.config", "s390.config"]
    # a mention is not a declaration
    kconfig = small_repo / "mm" / "Kconfig"
    kconfig.write_text("config FOO\n\tdepends on MEMORY_HOTPLUG_KUNIT_TEST\n")
    git(small_repo, "add", "-A")
    assert "kunit-suite.config" not in [p.name for p in build_fragments(arch, tree=small_repo)]
    (small_repo / "mm" / "Kconfig").write_text("config MEMORY_HOTPLUG_KUNIT_TEST\n\tbool\n")
    git(small_repo, "add", "-A")
    assert [p.name for p in build_fragments(arch, tree=small_repo)] == [
        "common.config", "kunit-suite.config", "s390.config"]
    assert fragment_arches(FRAGMENTS_DIR / "common.config") is None


def test_fragments_ask_for_what_the_series_needs() -> None:
    common = read_fragment(FRAGMENTS_DIR / "common.config")
    for symbol in ("MEMORY_HOTPLUG", "MEMORY_HOTREMOVE", "DEV_DAX_KMEM", "KEXEC", "KEXEC_FILE",
                   "CRASH_DUMP"):
        assert common[symbol] == "y", symbol
    assert common["WERROR"] == "n"
    x86 = read_fragment(FRAGMENTS_DIR / "x86_64.config")
    for symbol in ("HYPERV_BALLOON", "XEN_BALLOON", "XEN_BALLOON_MEMORY_HOTPLUG",
                   "ACPI_HOTPLUG_MEMORY", "ARCH_MEMORY_PROBE"):
        assert x86[symbol] == "y", symbol
    assert read_fragment(FRAGMENTS_DIR / "virtio-mem.config")["VIRTIO_MEM"] == "y"


# -- on the real tree -------------------------------------------------------------------------


def kconfig_build_dir(arch: str) -> Path:
    return cache_dir() / "build" / f"test-kconfig-{arch}"


@pytest.mark.realtree
def test_unsatisfiable_symbol_names_the_blocking_dependency(real_tree: Tree,
                                                            tmp_path: Path) -> None:
    arch = get_arch("x86_64")
    extra = tmp_path / "unsatisfiable.config"
    extra.write_text("# CONFIG_XEN_BALLOON is not set\nCONFIG_XEN_BALLOON_MEMORY_HOTPLUG=y\n"
                     "CONFIG_KSERIES_NO_SUCH_SYMBOL=y\n")
    fragments = [*build_fragments(arch), extra]
    problems = validate_config(real_tree.path, kconfig_build_dir("x86_64"), arch, fragments)
    by_symbol = {p.symbol: p for p in problems}
    assert set(by_symbol) == {"XEN_BALLOON_MEMORY_HOTPLUG", "KSERIES_NO_SUCH_SYMBOL"}
    blocked = by_symbol["XEN_BALLOON_MEMORY_HOTPLUG"]
    assert (blocked.wanted, blocked.got) == ("y", "n")
    assert "depends on XEN_BALLOON && MEMORY_HOTPLUG && XEN" in blocked.reason
    assert "unmet: XEN_BALLOON=n" in blocked.reason
    missing = by_symbol["KSERIES_NO_SUCH_SYMBOL"]
    assert (missing.got, missing.reason) == ("(undefined)", MISSING)
    assert "CONFIG_XEN_BALLOON_MEMORY_HOTPLUG=y wanted, got n: depends on" in str(blocked)


@pytest.mark.realtree
def test_arch_only_symbol_names_the_arch_dependency(real_tree: Tree, tmp_path: Path) -> None:
    arch = get_arch("s390")
    extra = tmp_path / "virtio-mem-on-s390.config"
    extra.write_text("CONFIG_VIRTIO_MENU=y\nCONFIG_VIRTIO_MEM=y\n")
    problems = validate_config(real_tree.path, kconfig_build_dir("s390"), arch,
                               [*build_fragments(arch), extra])
    assert [p.symbol for p in problems] == ["VIRTIO_MEM"]
    assert "(X86_64 || ARM64 || RISCV)" in problems[0].reason
    assert "X86_64 || ARM64 || RISCV (=n)" in problems[0].reason


@pytest.mark.realtree
def test_merge_is_skipped_when_inputs_are_unchanged(real_tree: Tree, tmp_path: Path) -> None:
    arch = get_arch("x86_64")
    build_dir = kconfig_build_dir("x86_64")
    fragments = build_fragments(arch)
    config = merge_config(real_tree.path, build_dir, arch, fragments)
    before = config.stat().st_mtime_ns
    assert merge_config(real_tree.path, build_dir, arch, fragments) == config
    assert config.stat().st_mtime_ns == before
    assert validate_config(real_tree.path, build_dir, arch, fragments) == []
    values = read_config_values(config.read_text())
    assert values["MEMORY_HOTPLUG"] == "y" and values["WERROR"] == "n"
    changed = tmp_path / "more.config"
    changed.write_text("# CONFIG_ARCH_MEMORY_PROBE is not set\n")
    merge_config(real_tree.path, build_dir, arch, [*fragments, changed])
    assert read_config_values(config.read_text())["ARCH_MEMORY_PROBE"] == "n"
    log = tmp_path / "config.log"
    merge_config(real_tree.path, build_dir, arch, fragments, log=log)
    assert read_config_values(config.read_text())["ARCH_MEMORY_PROBE"] == "y"
    # back to inputs this build dir has seen: their .config is put back, make is not run
    assert "the .config these inputs gave before" in log.read_text()
    assert "$ make" not in log.read_text()


@pytest.mark.realtree
def test_can_enable_on_s390(real_tree: Tree) -> None:
    kconfig = KconfigTree(real_tree.path, get_arch("s390"))
    assert kconfig.can_enable("MEMORY_HOTPLUG") == (True, "")
    assert kconfig.can_enable("S390") == (True, "")
    possible, reason = kconfig.can_enable("HYPERV_BALLOON")
    assert not possible
    assert "CONFIG_HYPERV_BALLOON depends on HYPERV" in reason
    assert "CONFIG_X86 does not exist for ARCH=s390" in reason
    assert kconfig.can_enable("PPC_PSERIES") == (
        False, "CONFIG_PPC_PSERIES does not exist for ARCH=s390")


def test_coverage_survives_a_kconfig_kconfiglib_cannot_parse(tmp_path: Path) -> None:
    """The coverage matrix asks kconfiglib whether a gating symbol could be set: when it
    cannot parse the tree, the cell says so instead of the build stage failing."""
    from kseries.kernel.kconfig import ConfigResult
    from kseries.stages.build.coverage import _CanEnable
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n")
    (tree / "Kconfig").write_text('config A\n\tbool "a"\n\tnewfangled keyword\n')
    config = ConfigResult(tree / ".config", "stamp", (),
                          LazyKconfig(tree, get_arch("x86_64"), tree / ".config"))
    possible, reason = _CanEnable(tmp_path, config).can_enable("A")
    assert not possible and reason.startswith("CONFIG_A is not set; kconfiglib cannot say")
