"""arches.py: the arch table, make command lines, missing-toolchain and unknown-arch errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.kernel.arches import ARCHES, check_toolchain, get_arch, make_command, toolchain_version
from tests.conftest import ROOT, CliResult, assert_one_line_error, run_cli


def test_the_four_arches_and_their_debian_cross_compilers() -> None:
    assert list(ARCHES) == ["x86_64", "arm64", "powerpc", "s390"]
    assert {a.name: (a.kernel_arch, a.cross_compile, a.gcc_package) for a in ARCHES.values()} == {
        "x86_64": ("x86", "", "gcc"),
        "arm64": ("arm64", "aarch64-linux-gnu-", "gcc-aarch64-linux-gnu"),
        "powerpc": ("powerpc", "powerpc64le-linux-gnu-", "gcc-powerpc64le-linux-gnu"),
        "s390": ("s390", "s390x-linux-gnu-", "gcc-s390x-linux-gnu"),
    }
    assert get_arch("powerpc").defconfig in ("ppc64le_defconfig", "pseries_le_defconfig")


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


def test_cli_unknown_arch_is_one_line_error() -> None:
    result = run_cli("build", "--arch", "x86_64", "--arch", "sparc")
    assert_one_line_error(result, "unknown arch 'sparc'", "x86_64, arm64, powerpc, s390")


def test_cli_missing_cross_compiler_is_one_line_error_before_any_work(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(tmp_path, "aarch64-linux-gnu-gcc"),
           "KSERIES_CACHE_DIR": str(tmp_path / "cache")}
    result = run_build_cli("--arch", "arm64", "--out", str(tmp_path / "out"), env=env)
    assert_one_line_error(result, "aarch64-linux-gnu-gcc", "apt-get install gcc-aarch64-linux-gnu")
    cache = tmp_path / "cache"
    assert not cache.exists() or [p.name for p in cache.iterdir()] == ["kseries.lock"]
