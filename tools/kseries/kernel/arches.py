"""The architectures kseries builds for: Debian cross compilers, defconfigs, make command lines.

Data per arch is data (ARCHES); the functions turn it into a make command line or a one-line
error naming the Debian package when a cross compiler is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from kseries.core.errors import KseriesError
from kseries.core.proc import require_program, run


@dataclass(frozen=True)
class Arch:
    name: str
    kernel_arch: str
    cross_compile: str
    defconfig: str
    gcc_package: str

    @property
    def cc(self) -> str:
        """The compiler command (without ccache)."""
        return f"{self.cross_compile}gcc"

    @property
    def ld(self) -> str:
        return f"{self.cross_compile}ld"


ARCHES: Mapping[str, Arch] = MappingProxyType({
    "x86_64": Arch("x86_64", "x86", "", "x86_64_defconfig", "gcc"),
    "arm64": Arch("arm64", "arm64", "aarch64-linux-gnu-", "defconfig", "gcc-aarch64-linux-gnu"),
    # ppc64le_defconfig = ppc64_defconfig + le.config: pseries and powernv are both built.
    "powerpc": Arch("powerpc", "powerpc", "powerpc64le-linux-gnu-", "ppc64le_defconfig",
                    "gcc-powerpc64le-linux-gnu"),
    "s390": Arch("s390", "s390", "s390x-linux-gnu-", "defconfig", "gcc-s390x-linux-gnu"),
})


def get_arch(name: str) -> Arch:
    arch = ARCHES.get(name)
    if arch is None:
        raise KseriesError(f"unknown arch '{name}'; known arches: {', '.join(ARCHES)}")
    return arch


def arch_for_kernel_dir(kernel_arch: str) -> Arch | None:
    """The Arch whose ARCH= is KERNEL_ARCH (arch/<kernel_arch>/ in the tree), if we build it."""
    return next((a for a in ARCHES.values() if a.kernel_arch == kernel_arch), None)


def jobs() -> int:
    """-j for make: the CPUs this process may run on ($(nproc))."""
    return max(1, len(os.sched_getaffinity(0)))


def make_command(arch: Arch, tree: Path, build_dir: Path, *targets: str,
                 extra: Sequence[str] = ()) -> list[str]:
    """make -C TREE O=BUILD_DIR ARCH= CROSS_COMPILE= CC="ccache <cc>" -j<nproc> EXTRA TARGETS."""
    return ["make", "-C", str(tree), f"O={build_dir}", f"ARCH={arch.kernel_arch}",
            f"CROSS_COMPILE={arch.cross_compile}", f"CC=ccache {arch.cc}", f"-j{jobs()}",
            *extra, *targets]


def check_toolchain(arch: Arch) -> None:
    """Fail with one line naming the Debian package when ARCH's compiler or binutils is missing."""
    for program in (arch.cc, arch.ld):
        if shutil.which(program) is None:
            raise KseriesError(f"{arch.name}: cross compiler '{program}' is not installed; "
                               f"install it: apt-get install {arch.gcc_package}")
    for program in ("make", "ccache"):
        require_program(program)


def toolchain_version(arch: Arch) -> str:
    """First line of '<cc> --version', e.g. 'gcc (Debian 12.2.0-14) 12.2.0'."""
    proc = run([arch.cc, "--version"], check=False)
    lines = proc.stdout.splitlines()
    return lines[0].strip() if lines else "unknown"
