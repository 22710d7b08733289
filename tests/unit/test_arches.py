"""arches.py: the arch registry (arches.toml), make command lines, missing-toolchain and
unknown-arch errors, and install-deps.sh reading the registry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.core.lock import cache_lock
from kseries.kernel.arches import (
    ARCHES,
    REGISTRY,
    arch_of_host,
    check_toolchain,
    get_arch,
    load_registry,
    make_command,
    packages_of_programs,
    toolchain_version,
)
from kseries.kernel.kconfig import FRAGMENTS_DIR, fragment_arches
from kseries.kernel.qemu import MACHINES
from tests.conftest import ROOT, CliResult, assert_one_line_error, run_cli

REGISTRY_PATH = ROOT / "tools" / "kseries" / "kernel" / REGISTRY


def test_the_four_arches_and_their_debian_cross_compilers() -> None:
    assert list(ARCHES) == ["x86_64", "arm64", "powerpc", "s390"]
    assert {a.name: (a.kernel_arch, a.cross_compile, a.gcc_package) for a in ARCHES.values()} == {
        "x86_64": ("x86", "", "gcc"),
        "arm64": ("arm64", "aarch64-linux-gnu-", "gcc-aarch64-linux-gnu"),
        "powerpc": ("powerpc", "powerpc64le-linux-gnu-", "gcc-powerpc64le-linux-gnu"),
        "s390": ("s390", "s390x-linux-gnu-", "gcc-s390x-linux-gnu"),
    }
    assert get_arch("powerpc").defconfig in ("ppc64le_defconfig", "pseries_le_defconfig")


def test_qemu_and_kunit_facts_per_arch() -> None:
    assert {a.name: (a.qemu, a.qemu_package, a.kunit.arch) for a in ARCHES.values()} == {
        "x86_64": ("qemu-system-x86_64", "qemu-system-x86", "x86_64"),
        "arm64": ("qemu-system-aarch64", "qemu-system-arm", "arm64"),
        "powerpc": ("qemu-system-ppc64", "qemu-system-ppc", "powerpc"),
        "s390": ("qemu-system-s390x", "qemu-system-misc", "s390"),
    }
    assert get_arch("powerpc").kunit.qemu_args == ("-cpu", "power9")
    assert all(a.kunit.tcg_timeout_s == 900 for a in ARCHES.values())


def test_guest_machines_come_from_the_registry() -> None:
    assert list(MACHINES) == ["x86_64", "arm64"]
    x86, arm = MACHINES["x86_64"], MACHINES["arm64"]
    assert (x86.qemu, x86.machine_args, x86.console, x86.kernel_image) == (
        "qemu-system-x86_64", ("-M", "pc"), "ttyS0", "arch/x86/boot/bzImage")
    assert (arm.qemu, arm.machine_args, arm.console, arm.kernel_image) == (
        "qemu-system-aarch64", ("-M", "virt", "-cpu", "max,pauth-impdef=on"), "ttyAMA0",
        "arch/arm64/boot/Image")
    assert {m.memory_device for m in MACHINES.values()} == {"virtio-mem-pci"}
    # -M virt has one UART: arm64 results go to a virtio console; Debian names the arches
    assert (x86.results_port, arm.results_port) == ("ttyS1", "hvc0")
    assert (x86.debian_arch, arm.debian_arch) == ("amd64", "arm64")


def test_virtio_mem_arches_match_the_kconfig_fragment() -> None:
    """The registry and Kconfig.fragments/virtio-mem.config must name the same arches."""
    wanted = fragment_arches(FRAGMENTS_DIR / "virtio-mem.config")
    assert wanted == tuple(a.name for a in ARCHES.values() if a.virtio_mem)


def test_hosts_by_uname_machine() -> None:
    assert [arch_of_host(m).name for m in ("x86_64", "aarch64", "ppc64le", "s390x")  # type: ignore[union-attr]
            ] == list(ARCHES)
    assert arch_of_host("mips") is None
    assert arch_of_host() == arch_of_host(os.uname().machine)


def test_packages_of_programs_names_compilers_binutils_and_qemu() -> None:
    packages = packages_of_programs()
    assert packages["gcc"] == "gcc" and packages["ld"] == "binutils"
    assert packages["aarch64-linux-gnu-gcc"] == "gcc-aarch64-linux-gnu"
    assert packages["s390x-linux-gnu-ld"] == "binutils-s390x-linux-gnu"
    assert packages["qemu-system-s390x"] == "qemu-system-misc"
    assert packages["qemu-system-ppc64"] == "qemu-system-ppc"
    assert len(packages) == 3 * len(ARCHES)


def test_a_bad_registry_entry_is_a_one_line_error() -> None:
    text = REGISTRY_PATH.read_text()
    with pytest.raises(KseriesError, match=r"\[s390\] qemu must be a string"):
        load_registry(text.replace('qemu = "qemu-system-s390x"', "qemu = 390"))
    with pytest.raises(KseriesError, match=r"\[arm64.kunit\] qemu_args must be a list"):
        load_registry(text.replace('arch = "arm64"\nqemu_args = []', 'arch = "arm64"'))
    with pytest.raises(KseriesError, match=r"\[x86_64.guest\] console must be a string"):
        load_registry(text.replace('console = "ttyS0"\n', ""))
    with pytest.raises(KseriesError, match="does not parse"):
        load_registry("[x86_64\n")
    assert load_registry(text) == ARCHES


def test_install_deps_installs_the_registry_packages(tmp_path: Path) -> None:
    """With every package installed (a stand-in dpkg-query says so) the script is a no-op;
    the packages it asked about are the fixed list plus the registry's per-arch ones."""
    asked = tmp_path / "asked"
    fake = tmp_path / "bin" / "dpkg-query"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$3" >> {asked}\nprintf "install ok installed"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "install-deps.sh")], env=env,
                          capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    names = asked.read_text().split()
    assert len(names) == len(set(names))
    for arch in ARCHES.values():
        assert {arch.gcc_package, arch.binutils_package, arch.qemu_package} <= set(names)
    assert {"make", "ccache", "busybox-static", "kexec-tools"} <= set(names)


def test_unknown_arch_lists_the_known_ones() -> None:
    with pytest.raises(KseriesError) as err:
        get_arch("sparc")
    assert str(err.value) == "unknown arch 'sparc'; known arches: x86_64, arm64, powerpc, s390"


def test_make_command_is_out_of_tree_cross_ccache_parallel(tmp_path: Path) -> None:
    cmd = make_command(get_arch("s390"), tmp_path / "linux", tmp_path / "build",
                       "mm/memory_hotplug.o", extra=("W=1",))
    jobs = len(os.sched_getaffinity(0))
    assert cmd == ["make", "-C", str(tmp_path / "linux"), f"O={tmp_path / 'build'}",
                   "ARCH=s390", "CROSS_COMPILE=s390x-linux-gnu-",
                   "CC=ccache s390x-linux-gnu-gcc", f"-j{jobs}", "W=1", "mm/memory_hotplug.o"]


def test_installed_cross_compilers_pass_and_report_their_version() -> None:
    for arch in ARCHES.values():
        check_toolchain(arch)
        assert "gcc" in toolchain_version(arch)


def path_without(tmp_path: Path, missing: str) -> str:
    """A PATH that has every program kseries needs (as symlinks) except MISSING."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("make", "ccache", "git", "gcc", "ld", "sparse", "aarch64-linux-gnu-gcc",
                 "aarch64-linux-gnu-ld", "powerpc64le-linux-gnu-gcc", "powerpc64le-linux-gnu-ld",
                 "s390x-linux-gnu-gcc", "s390x-linux-gnu-ld", "b4"):
        found = shutil.which(name) or str(Path(sys.executable).parent / name)
        if name != missing and Path(found).exists():
            (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def test_missing_cross_compiler_names_the_apt_package(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_without(tmp_path, "s390x-linux-gnu-gcc"))
    with pytest.raises(KseriesError) as err:
        check_toolchain(get_arch("s390"))
    assert "s390x-linux-gnu-gcc" in str(err.value)
    assert "apt-get install gcc-s390x-linux-gnu" in str(err.value)
    check_toolchain(get_arch("arm64"))


def run_build_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    kseries = Path(sys.executable).parent / "kseries"
    proc = subprocess.run([str(kseries), "build", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_cli_unknown_arch_is_one_line_error(tmp_path: Path) -> None:
    """At once, even while another run holds the cache (the check comes before the lock)."""
    cache = tmp_path / "cache"
    with cache_lock(cache, "another run", lambda _m: None):
        result = run_cli("build", "--arch", "x86_64", "--arch", "sparc", "--cache-dir", cache,
                         timeout_s=60)
    assert_one_line_error(result, "unknown arch 'sparc'", "x86_64, arm64, powerpc, s390")
    assert "waiting for another kseries run" not in result.stderr


def test_cli_missing_cross_compiler_is_one_line_error_before_any_work(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(tmp_path, "aarch64-linux-gnu-gcc"),
           "KSERIES_CACHE_DIR": str(tmp_path / "cache")}
    result = run_build_cli("--arch", "arm64", "--out", str(tmp_path / "out"), env=env)
    assert_one_line_error(result, "aarch64-linux-gnu-gcc", "apt-get install gcc-aarch64-linux-gnu")
    cache = tmp_path / "cache"
    assert not cache.exists() or [p.name for p in cache.iterdir()] == ["kseries.lock"]
