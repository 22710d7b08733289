"""Kbuild gating: synthetic makefiles, and the real 6.12 callers (imported tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.kernel.kbuild import KbuildTree, arch_of, gating_symbols, object_for, parse_makefile
from kseries.kernel.tree import Tree


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write(tmp_path, {
        "Kbuild": "obj-y += kernel/\nobj-y += drivers/\nobj-y += arch/$(SRCARCH)/\n",
        "Makefile": "libs-y := lib/\n",
        "lib/Makefile": "lib-y += string.o\n",
        "kernel/Makefile": "obj-y = fork.o \\\n\texit.o\n# obj-$(CONFIG_GONE) += exit.o\n",
        "drivers/Makefile": ("obj-$(CONFIG_FOO_BUS) += foo/\nobj-$(subst m,y,$(CONFIG_HV)) += hv/\n"
                             "obj-$(CONFIG_DEEP) += deep/inner/\n"),
        "drivers/foo/Makefile": (
            "obj-$(CONFIG_FOO) += foo.o\nfoo-y := core.o util.o\n"
            "foo-$(CONFIG_FOO_EXTRA) += extra.o\n"
            "obj-$(CONFIG_BAZ) += baz.o\nbaz-objs := baz_main.o\n"
            "hp-$(CONFIG_MEMORY_HOTPLUG) += hp.o\nobj-y += $(hp-y)\n"
            "ifdef CONFIG_FOO_DEBUG\nobj-y += debug.o\nelse\nobj-y += nodebug.o\nendif\n"
            "ifeq ($(CONFIG_FOO_X),y)\nobj-y += x.o\nendif\n"
            "obj-y := init_$(BITS).o\nCFLAGS_core.o := -I$(src)\n"),
        "drivers/foo/Kbuild": "obj-$(CONFIG_FOO) += foo.o\nfoo-y := core.o util.o extra.o\n",
        "drivers/hv/Makefile": "obj-$(CONFIG_HV_BALLOON) += hv_balloon.o\n",
        "drivers/deep/inner/Makefile": "obj-y += d.o\n",
        "arch/powerpc/Kbuild": "obj-y += platforms/\n",
        "arch/powerpc/platforms/Makefile": "obj-$(CONFIG_PPC_PSERIES) += pseries/\n",
        "arch/powerpc/platforms/pseries/Makefile": "obj-$(CONFIG_MEMORY_HOTPLUG) += hotplug.o\n",
    })


def test_object_for_and_arch_of() -> None:
    assert object_for("drivers/dax/kmem.c") == "drivers/dax/kmem.o"
    assert object_for("arch/x86/lib/memcpy_64.S") == "arch/x86/lib/memcpy_64.o"
    with pytest.raises(KseriesError, match=r"not a \.c or \.S file"):
        object_for("include/linux/memory_hotplug.h")
    assert arch_of("arch/powerpc/platforms/pseries/hotplug-memory.c") == "powerpc"
    assert arch_of("drivers/base/memory.c") is None


def test_kbuild_file_is_preferred_over_makefile(tree: Path) -> None:
    # drivers/foo has both: kbuild reads Kbuild, where extra.o is unconditional.
    assert gating_symbols(tree, "drivers/foo/extra.c") == ("CONFIG_FOO", "CONFIG_FOO_BUS")


def test_plain_obj_composite_and_dir_gating(tree: Path) -> None:
    (tree / "drivers/foo/Kbuild").unlink()
    assert gating_symbols(tree, "drivers/foo/core.c") == ("CONFIG_FOO", "CONFIG_FOO_BUS")
    assert gating_symbols(tree, "drivers/foo/extra.c") == (
        "CONFIG_FOO_EXTRA", "CONFIG_FOO", "CONFIG_FOO_BUS")
    assert gating_symbols(tree, "drivers/foo/baz_main.c") == ("CONFIG_BAZ", "CONFIG_FOO_BUS")
    assert gating_symbols(tree, "drivers/foo/hp.c") == ("CONFIG_MEMORY_HOTPLUG", "CONFIG_FOO_BUS")
    assert gating_symbols(tree, "drivers/foo/debug.c") == ("CONFIG_FOO_DEBUG", "CONFIG_FOO_BUS")
    assert gating_symbols(tree, "drivers/foo/nodebug.c") == ("!CONFIG_FOO_DEBUG",
                                                             "CONFIG_FOO_BUS")
    assert gating_symbols(tree, "drivers/foo/x.c") == ("CONFIG_FOO_X", "CONFIG_FOO_BUS")
    assert gating_symbols(tree, "drivers/foo/init_64.c") == ("CONFIG_FOO_BUS",)


def test_unconditional_and_top_level_lists(tree: Path) -> None:
    assert gating_symbols(tree, "kernel/exit.c") == ()
    assert gating_symbols(tree, "lib/string.c") == ()
    assert gating_symbols(tree, "drivers/hv/hv_balloon.c") == ("CONFIG_HV_BALLOON", "CONFIG_HV")
    assert gating_symbols(tree, "drivers/deep/inner/d.c") == ("CONFIG_DEEP",)


def test_arch_gating(tree: Path) -> None:
    gating = KbuildTree(tree).gating("arch/powerpc/platforms/pseries/hotplug.c")
    assert gating.symbols == ("CONFIG_MEMORY_HOTPLUG", "CONFIG_PPC_PSERIES", "CONFIG_PPC")
    assert gating.named_in == ("arch/powerpc/platforms/pseries", "arch/powerpc/platforms",
                               "arch/powerpc")


def test_unknown_object_is_a_one_line_error(tree: Path) -> None:
    with pytest.raises(KseriesError, match=r"nowhere\.o is not named in any Makefile"):
        gating_symbols(tree, "drivers/foo/nowhere.c")


def test_parse_makefile_joins_continuations_and_drops_comments(tree: Path) -> None:
    makefile = parse_makefile(tree / "kernel/Makefile")
    assert [(a.variable, a.items, a.line) for a in makefile.assignments] == [
        ("obj-y", ("fork.o", "exit.o"), 1)]


@pytest.fixture(scope="module")
def base_tree(real_tree: Tree) -> Path:
    """The imported 6.12.117 tree's own checkout: the pristine base (kseries works elsewhere)."""
    return real_tree.path


@pytest.mark.realtree
@pytest.mark.parametrize(("source", "symbols"), [
    ("arch/powerpc/platforms/pseries/hotplug-memory.c",
     ("CONFIG_MEMORY_HOTPLUG", "CONFIG_PPC_PSERIES", "CONFIG_PPC")),
    ("drivers/acpi/acpi_memhotplug.c", ("CONFIG_ACPI",)),
    ("drivers/base/memory.c", ("CONFIG_MEMORY_HOTPLUG",)),
    ("drivers/s390/char/sclp_cmd.c", ("CONFIG_S390",)),
    ("drivers/hv/hv_balloon.c", ("CONFIG_HYPERV_BALLOON", "CONFIG_HYPERV")),
    ("drivers/xen/balloon.c", ("CONFIG_XEN",)),
    ("drivers/virtio/virtio_mem.c", ("CONFIG_VIRTIO_MEM",)),
    ("drivers/dax/kmem.c", ("CONFIG_DEV_DAX_KMEM",)),
    ("mm/memory_hotplug.c", ("CONFIG_MEMORY_HOTPLUG",)),
    ("drivers/xen/xen-acpi-pad.c", ("CONFIG_X86", "CONFIG_XEN_ACPI", "CONFIG_XEN_DOM0",
                                    "CONFIG_XEN")),
    ("arch/x86/mm/init_64.c", ("CONFIG_X86",)),
])
def test_real_tree_gating(base_tree: Path, source: str, symbols: tuple[str, ...]) -> None:
    assert gating_symbols(base_tree, source) == symbols
