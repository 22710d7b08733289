"""The vmtest guest: what one QEMU run is (a scenario), the kernel command line, the
initramfs (busybox-static, kexec-tools, makedumpfile and bash with their libraries, our checks
from kernel-overlay/vmtest/, the tree's memory-hotplug and kexec selftests, the kernel itself
as the kexec image, and the initramfs itself for the next kernel), and one run with the
virtio-mem device backed by a tmpfs file the host measures.
"""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kseries.core.context import progress
from kseries.core.errors import KseriesError
from kseries.core.paths import OVERLAY_DIR
from kseries.core.proc import require_program
from kseries.kernel import ktap
from kseries.kernel.arches import arch_of_host
from kseries.kernel.qemu import (
    MIB,
    DeviceRequests,
    Guest,
    Machine,
    Timeouts,
    VirtioMem,
    machine,
    run_guest,
)
from kseries.stages.vmtest import initramfs as ir
from kseries.stages.vmtest.checks import KernelResult
from kseries.stages.vmtest.kernel import VMCORE_SOURCE, KernelBuild, helper_binary
from kseries.stages.vmtest.userland import fetch_userland, program_path, shared_libraries

OVERLAY = OVERLAY_DIR / "vmtest"
SELFTEST_DIR = "tools/testing/selftests/memory-hotplug"
KEXEC_SELFTEST_DIR = "tools/testing/selftests/kexec"
DEFAULT_PHASES: tuple[tuple[str, int], ...] = (("boot", 256), ("grow", 512), ("shrink", 128))
GUEST_PROGRAMS = {"usr/sbin/kexec": "kexec", "bin/bash": "bash",
                  "usr/bin/makedumpfile": "makedumpfile"}
INNER_INITRD = "boot/initrd.cpio"  # the guest's copy of its initramfs, for the next kernel
# Sizes that are not a multiple of the 128 MiB memory block: the last block is partly
# plugged, which is what the virtio-mem vmcore callback has to hide (2 MiB device blocks).
KDUMP_MIB = 200
HOTPLUG_SIZES = (456, 328)  # crash_hotplug: grow, then shrink, after the capture kernel loads
CRASHKERNEL = "192M"  # the capture kernel, its initramfs and makedumpfile's dump under TCG


@dataclass(frozen=True)
class VmOptions:
    arch: str = "x86_64"
    base: bool = True
    keep: bool = False
    accel: str = "auto"
    timeout_s: float = 600.0
    phases: tuple[tuple[str, int], ...] = DEFAULT_PHASES
    virtio_mem_region: int = 1024 * MIB
    # also build and run every mutant kernel (mutants.py): does each check bite?
    mutants: bool = False
    only_mutants: tuple[str, ...] = ()  # with mutants: just these (() = all)
    # boot every commit of the series too (not only the head)
    every_commit: bool = False
    # more guest arches after ARCH, with the series only (verify: arm64)
    more_arches: tuple[str, ...] = ()
    # how long the guest waits for the driver to follow a resize (a mutant may never)
    plug_timeout_s: int = 120
    scenarios: tuple[str, ...] = ()  # () = all of SCENARIOS
    guests: int = 0  # guests run at once (guest_pool.py); 0: one per CPU

    @property
    def boot_size(self) -> int:
        return self.phases[0][1] * MIB


@dataclass(frozen=True)
class Scenario:
    """One QEMU run: the guest's vmtest.mode and the device size it boots with. A scenario may
    go through several kernels (kexec reboots, a crash into the capture kernel)."""

    name: str
    mode: str
    boot_mib: int | None = None  # None: the first phase's size
    # run on the base kernel too, side by side (where the series changes what is seen)
    with_base: bool = True


SCENARIOS: tuple[Scenario, ...] = (
    # phases, then kexec_load_reboot, kexec_file_reboot and kdump_load (kexec -p): the base
    # side by side shows what the series changes at load time, after a reboot and in a dump
    Scenario("kexec", "test"),
    # kexec_file dumps: the kernel builds the headers from the resource, which the series
    # leaves as the base had it; the series kernel only (saves two guest runs per vmtest)
    Scenario("kdump_file", "kdump_file", KDUMP_MIB, with_base=False),
    Scenario("crash_hotplug", "crash_hotplug", 128, with_base=False),
    # the controls hot-add memory nothing backs: no kexec may follow them
    Scenario("control", "control", 128),
)


# Scenarios an arch cannot run, and why (a reasoned skip in the report).
NOT_ON_ARCH = {
    "arm64": {"crash_hotplug": "Linux 6.12 arm64 has no crash hotplug (it does not select "
                               "ARCH_SUPPORTS_CRASH_HOTPLUG): a capture kernel loaded before a "
                               "resize dumps what was plugged at load time"},
}


def arch_scenarios(arch: str, names: tuple[str, ...]) -> tuple[Scenario, ...]:
    """The scenarios asked for (all by default) that ARCH can run."""
    skipped = NOT_ON_ARCH.get(arch, {})
    return tuple(s for s in selected_scenarios(names) if s.name not in skipped)


def selected_scenarios(names: tuple[str, ...]) -> tuple[Scenario, ...]:
    if not names:
        return SCENARIOS
    unknown = [n for n in names if n not in {s.name for s in SCENARIOS}]
    if unknown:
        raise KseriesError(f"unknown scenario {', '.join(unknown)}; use one of "
                           f"{', '.join(s.name for s in SCENARIOS)}")
    return tuple(s for s in SCENARIOS if s.name in names)



def kernel_cmdline(m: Machine, opts: VmOptions, mode: str = "test",
                   boot_mib: int | None = None) -> str:
    phases = ",".join(f"{name}:{mib}" for name, mib in opts.phases)
    sizes = ",".join(str(mib) for mib in HOTPLUG_SIZES)
    return (f"console={m.console} crashkernel={CRASHKERNEL} "
            "memhp_default_state=online_movable panic=-1 oops=panic "
            f"vmtest.mode={mode} vmtest.phases={phases} vmtest.results={m.results_port} "
            f"vmtest.boot_size={boot_mib or opts.phases[0][1]} vmtest.kdump_size={KDUMP_MIB} "
            f"vmtest.hotplug_sizes={sizes} vmtest.plug_timeout={opts.plug_timeout_s}")



def guest_programs(cache: Path, arch: str) -> list[ir.Entry]:
    """busybox (every applet), kexec, bash and makedumpfile with their libraries: the host's
    own for a guest of the host's arch, else Debian's packages of ARCH (userland.py)."""
    host = arch_of_host(platform.machine())
    applets = Path(require_program("busybox"))
    if host is not None and host.name == arch:
        entries = ir.busybox(applets)
        for path, name in GUEST_PROGRAMS.items():
            entries += ir.program(path, Path(require_program(name)))
        return entries
    land = fetch_userland(cache, machine(arch).debian_arch, progress=progress)
    # the same Debian busybox version for both arches: the host's lists the applets
    entries = ir.busybox(program_path(land, "busybox"), applets_of=applets)
    for path, name in GUEST_PROGRAMS.items():
        binary = program_path(land, name)
        entries.append(ir.host_file(path, binary))
        entries += [ir.host_file(str(lib.relative_to(land.root)), lib)
                    for lib in shared_libraries(land, binary)]
    return entries


def initramfs_entries(worktree: Path, build: KernelBuild, programs: list[ir.Entry],
                      helper: Path, vmcore_reader: Path) -> list[ir.Entry]:
    """The guest's whole userspace, see the module docstring."""
    entries = ir.base_layout() + programs
    entries += [ir.host_file("init", OVERLAY / "init", executable=True),
                ir.host_file("vmtest/vmtest.sh", OVERLAY / "vmtest.sh", executable=True),
                ir.host_file("vmtest/kexec-file-debug", helper, executable=True),
                ir.host_file("vmtest/vmcore-read", vmcore_reader, executable=True),
                ir.host_file("boot/vmlinuz", build.image),
                ir.host_file("boot/config", build.config)]
    entries += ir.directory_tree("selftests/memory-hotplug", worktree / SELFTEST_DIR)
    entries += ir.directory_tree("selftests/kexec", worktree / KEXEC_SELFTEST_DIR)
    return entries


def pack_initramfs(worktree: Path, cache: Path, build: KernelBuild, arch: str) -> Path:
    helper = helper_binary(cache, OVERLAY, arch)
    reader = helper_binary(cache, OVERLAY, arch, VMCORE_SOURCE)
    out = cache / "vm" / arch / f"initramfs-{build.label}.cpio"
    entries = initramfs_entries(worktree, build, guest_programs(cache, arch), helper, reader)
    return ir.write_archive(entries, out, inner=INNER_INITRD)


def run_kernel(build: KernelBuild, initrd: Path, m: Machine, opts: VmOptions, accel: str,
               logs: Path, scenario: Scenario = SCENARIOS[0]) -> KernelResult:
    """One scenario with BUILD: a QEMU run, the device backed by a tmpfs file the host
    measures (DeviceRequests), removed afterwards."""
    boot_mib = scenario.boot_mib or opts.phases[0][1]
    with tempfile.TemporaryDirectory(prefix="kseries-vmem-", dir=backing_dir()) as tmp:
        device = VirtioMem(region=opts.virtio_mem_region, requested=boot_mib * MIB,
                           backing=Path(tmp) / "virtio-mem.ram")
        guest = Guest(m, build.image, initrd,
                      kernel_cmdline(m, opts, scenario.mode, scenario.boot_mib),
                      virtio_mem=device, accel=accel)
        progress(f"vmtest: {scenario.name} with the {build.label} kernel "
                 f"({build.commit[:12]}, {accel})")
        requests = DeviceRequests(device)
        run = run_guest(guest, logs, Timeouts(total_s=opts.timeout_s), requests)
    return KernelResult(build.label, build.commit, ktap.parse(run.results), run, None,
                        scenario.name, tuple(requests.usages))


def backing_dir() -> str | None:
    """A tmpfs for the device's backing file (holes cost nothing), else the default tmp."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
