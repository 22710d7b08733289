"""The architectures kseries builds for, boots KUnit and test guests on: the registry.

Every per-arch fact (compilers, defconfig, QEMU and its package, kunit.py's names, the guest
machine, KVM and virtio-mem) is data in arches.toml, loaded once into frozen Arch values;
the functions turn an Arch into a make command line or a one-line error naming the Debian
package when a cross compiler is missing.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kseries.core.errors import InfraError, KseriesError
from kseries.core.proc import require_program, run

REGISTRY = "arches.toml"


@dataclass(frozen=True)
class KunitFacts:
    """How kunit.py runs this arch: its --arch (qemu_configs/<arch>.py) and our additions."""

    arch: str
    qemu_args: tuple[str, ...]
    tcg_timeout_s: int


@dataclass(frozen=True)
class GuestFacts:
    """What a vmtest guest of this arch needs from QEMU and the kernel."""

    machine_args: tuple[str, ...]
    console: str
    kernel_image: str
    memory_device: str
    # where the guest prints its results: a second serial port (ttyS1) or, where the machine
    # has one UART (arm64 -M virt), a virtio console (hvc0)
    results_port: str
    # Debian's name of the arch, for its userland packages (busybox-static, kexec-tools, ...)
    debian_arch: str


@dataclass(frozen=True)
class Arch:
    name: str
    kernel_arch: str
    cross_compile: str
    defconfig: str
    gcc_package: str
    binutils_package: str
    qemu: str
    qemu_package: str
    host_machine: str
    virtio_mem: bool
    kunit: KunitFacts
    guest: GuestFacts | None = None

    @property
    def cc(self) -> str:
        """The compiler command (without ccache)."""
        return f"{self.cross_compile}gcc"

    @property
    def ld(self) -> str:
        return f"{self.cross_compile}ld"


def load_registry(text: str) -> Mapping[str, Arch]:
    """Every arch of an arches.toml text, in its order; a bad entry is a one-line error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise KseriesError(f"{REGISTRY} does not parse: {err}") from None
    return MappingProxyType({name: _arch(name, _Table(name, table))
                             for name, table in data.items()})


class _Table:
    """One TOML table, read with the types we expect; a wrong or missing key names itself."""

    def __init__(self, where: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise KseriesError(f"{REGISTRY}: [{where}] is not a table")
        self.where, self.data = where, data

    def _get(self, key: str, kind: type, what: str) -> Any:
        value = self.data.get(key)
        if not isinstance(value, kind):
            raise KseriesError(f"{REGISTRY}: [{self.where}] {key} must be {what}")
        return value

    def text(self, key: str) -> str:
        return str(self._get(key, str, "a string"))

    def flag(self, key: str) -> bool:
        return bool(self._get(key, bool, "true or false"))

    def number(self, key: str) -> int:
        return int(self._get(key, int, "a number"))

    def words(self, key: str) -> tuple[str, ...]:
        value = self._get(key, list, "a list of strings")
        if not all(isinstance(item, str) for item in value):
            raise KseriesError(f"{REGISTRY}: [{self.where}] {key} must be a list of strings")
        return tuple(value)

    def table(self, key: str) -> _Table:
        return _Table(f"{self.where}.{key}", self.data.get(key))


def _arch(name: str, t: _Table) -> Arch:
    kunit = t.table("kunit")
    guest = t.table("guest") if "guest" in t.data else None
    return Arch(
        name=name, kernel_arch=t.text("kernel_arch"), cross_compile=t.text("cross_compile"),
        defconfig=t.text("defconfig"), gcc_package=t.text("gcc_package"),
        binutils_package=t.text("binutils_package"), qemu=t.text("qemu"),
        qemu_package=t.text("qemu_package"), host_machine=t.text("host_machine"),
        virtio_mem=t.flag("virtio_mem"),
        kunit=KunitFacts(kunit.text("arch"), kunit.words("qemu_args"),
                         kunit.number("tcg_timeout_s")),
        guest=None if guest is None else GuestFacts(
            guest.words("machine_args"), guest.text("console"), guest.text("kernel_image"),
            guest.text("memory_device"), guest.text("results_port"),
            guest.text("debian_arch")))


ARCHES: Mapping[str, Arch] = load_registry(
    resources.files("kseries.kernel").joinpath(REGISTRY).read_text())


def get_arch(name: str) -> Arch:
    arch = ARCHES.get(name)
    if arch is None:
        raise KseriesError(f"unknown arch '{name}'; known arches: {', '.join(ARCHES)}")
    return arch


def arch_for_kernel_dir(kernel_arch: str) -> Arch | None:
    """The Arch whose ARCH= is KERNEL_ARCH (arch/<kernel_arch>/ in the tree), if we build it."""
    return next((a for a in ARCHES.values() if a.kernel_arch == kernel_arch), None)


def arch_of_host(machine: str | None = None) -> Arch | None:
    """The Arch this host is (MACHINE: `uname -m`, default this host's), if we know it."""
    machine = machine or os.uname().machine
    return next((a for a in ARCHES.values() if a.host_machine == machine), None)


def packages_of_programs() -> dict[str, str]:
    """Program -> Debian package for every arch's compiler, binutils and QEMU binary."""
    packages: dict[str, str] = {}
    for arch in ARCHES.values():
        packages[arch.cc] = arch.gcc_package
        packages[arch.ld] = arch.binutils_package
        packages[arch.qemu] = arch.qemu_package
    return packages


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
            raise InfraError(f"{arch.name}: cross compiler '{program}' is not installed; "
                             f"install it: apt-get install {packages_of_programs()[program]}")
    for program in ("make", "ccache"):
        require_program(program)


def require_arch_program(program: str) -> str:
    """The path of an arch's compiler, binutils or QEMU, or an error naming its package."""
    found = shutil.which(program)
    if found is None:
        package = packages_of_programs().get(program, program)
        raise InfraError(f"'{program}' is not installed; install it: apt-get install {package} "
                         "(or run 'make setup')")
    return found


def toolchain_version(arch: Arch) -> str:
    """First line of '<cc> --version', e.g. 'gcc (Debian 12.2.0-14) 12.2.0'."""
    proc = run([arch.cc, "--version"], check=False)
    lines = proc.stdout.splitlines()
    return lines[0].strip() if lines else "unknown"
