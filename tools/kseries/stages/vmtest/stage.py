"""kseries vmtest: boot the patched (and the base) kernel in QEMU with a virtio-mem device and
check the kexec contract with the real kexec-tools.

Flow: build small guest kernels (vmkernel), pack an initramfs per kernel (busybox-static,
kexec-tools with its libraries, bash, our checks from kernel-overlay/vmtest/, the tree's
memory-hotplug selftest, the kernel itself as the kexec image), boot it under TCG (KVM only
when a probe boot proves it works), resize the device through QMP when the guest asks,
and turn the guest's TAP into report checks, series next to base (vmchecks).
"""

from __future__ import annotations

import argparse
import platform
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kseries.core.context import Context, progress
from kseries.core.errors import KseriesError
from kseries.core.git import resolve_commit
from kseries.core.paths import OVERLAY_DIR
from kseries.core.pipeline import RunState, StageDef
from kseries.core.proc import require_program
from kseries.core.report import Check, Stage, stopwatch, worst
from kseries.kernel import ktap, kvm
from kseries.kernel.arches import arch_of_host, get_arch, require_arch_program
from kseries.kernel.qemu import (
    MACHINES,
    MIB,
    Guest,
    Machine,
    Timeouts,
    VirtioMem,
    machine,
    memory_device_support,
    resize_virtio_mem,
    run_guest,
)
from kseries.series.apply import ApplyResult
from kseries.stages.vmtest import initramfs as ir
from kseries.stages.vmtest.checks import KernelResult, checks_for, side_by_side, spans
from kseries.stages.vmtest.kernel import (
    KernelBuild,
    build_pair,
    helper_binary,
)

OVERLAY = OVERLAY_DIR / "vmtest"
SELFTEST_DIR = "tools/testing/selftests/memory-hotplug"
DEFAULT_PHASES: tuple[tuple[str, int], ...] = (("boot", 256), ("grow", 512), ("shrink", 128))
GUEST_PROGRAMS = {"usr/sbin/kexec": "kexec", "bin/bash": "bash"}
KVM_PROBE_TIMEOUTS = Timeouts(total_s=30.0, silent_s=25.0)
EXIT_WARN = 250


@dataclass(frozen=True)
class VmOptions:
    arch: str = "x86_64"
    base: bool = True
    keep: bool = False
    accel: str = "auto"
    timeout_s: float = 600.0
    phases: tuple[tuple[str, int], ...] = DEFAULT_PHASES
    virtio_mem_region: int = 1024 * MIB

    @property
    def boot_size(self) -> int:
        return self.phases[0][1] * MIB


@dataclass(frozen=True)
class Outcome:
    """Everything one vmtest run found, before it becomes a report stage."""

    arch: str
    accel: str
    accel_note: str
    builds: tuple[KernelBuild, ...]
    results: tuple[KernelResult, ...]
    logs: Path
    extra_checks: tuple[Check, ...] = ()
    other_arches: tuple[Check, ...] = ()


# -- the guest ------------------------------------------------------------------------------


def kernel_cmdline(m: Machine, opts: VmOptions, mode: str = "test") -> str:
    phases = ",".join(f"{name}:{mib}" for name, mib in opts.phases)
    return (f"console={m.console} crashkernel=64M memhp_default_state=online_movable "
            f"panic=-1 oops=panic vmtest.mode={mode} vmtest.phases={phases} "
            "vmtest.plug_timeout=120")


def userspace_problem(arch: str) -> str | None:
    """Why the host's busybox/kexec-tools/bash cannot run in an ARCH guest, if they cannot."""
    host = arch_of_host(platform.machine())
    if host is None or host.name != arch:
        return (f"the guest needs {arch} builds of busybox-static, kexec-tools and bash; this "
                f"{platform.machine()} host has only its own (Debian multiarch :{arch} "
                "packages would be needed)")
    return None


def initramfs_entries(worktree: Path, kernel: Path, helper: Path) -> list[ir.Entry]:
    """The guest's whole userspace, see the module docstring."""
    entries = ir.base_layout() + ir.busybox(Path(require_program("busybox")))
    for path, name in GUEST_PROGRAMS.items():
        entries += ir.program(path, Path(require_program(name)))
    entries += [ir.host_file("init", OVERLAY / "init", executable=True),
                ir.host_file("vmtest/vmtest.sh", OVERLAY / "vmtest.sh", executable=True),
                ir.host_file("vmtest/kexec-file-debug", helper, executable=True),
                ir.host_file("boot/vmlinuz", kernel)]
    entries += ir.directory_tree("selftests/memory-hotplug", worktree / SELFTEST_DIR)
    return entries


def pack_initramfs(worktree: Path, cache: Path, build: KernelBuild, arch: str) -> Path:
    helper = helper_binary(cache, OVERLAY, arch)
    out = cache / "vm" / arch / f"initramfs-{build.label}.cpio"
    return ir.write_archive(initramfs_entries(worktree, build.image, helper), out)


def run_kernel(build: KernelBuild, initrd: Path, m: Machine, opts: VmOptions, accel: str,
               logs: Path) -> KernelResult:
    device = VirtioMem(region=opts.virtio_mem_region, requested=opts.boot_size)
    guest = Guest(m, build.image, initrd, kernel_cmdline(m, opts), virtio_mem=device,
                  accel=accel)
    progress(f"vmtest: booting the {build.label} kernel ({build.commit[:12]}, {accel})")
    run = run_guest(guest, logs, Timeouts(total_s=opts.timeout_s), resize_virtio_mem(device))
    return KernelResult(build.label, build.commit, ktap.parse(run.results), run, None)


def choose_accel(cache: Path, m: Machine, build: KernelBuild, initrd: Path, opts: VmOptions,
                 logs: Path) -> tuple[str, str]:
    """TCG, unless KVM was asked for, or kernel/kvm.py's host checks and a probe boot of the
    series kernel (remembered per QEMU and host kernel) allow KVM."""
    if opts.accel in ("tcg", "kvm"):
        return opts.accel, f"--accel {opts.accel}"
    return kvm.choose_accel(cache, get_arch(m.arch),
                            lambda: kvm_probe_boots(m, build, initrd, opts, logs))


def kvm_probe_boots(m: Machine, build: KernelBuild, initrd: Path, opts: VmOptions,
                    logs: Path) -> bool:
    """Boot BUILD under KVM in probe mode: does the guest's /init get to say so?"""
    progress("vmtest: probing whether KVM guests boot here (once per QEMU and host kernel)")
    guest = Guest(m, build.image, initrd, kernel_cmdline(m, opts, mode="probe"),
                  virtio_mem=VirtioMem(requested=opts.boot_size), accel="kvm")
    run = run_guest(guest, logs / "kvm-probe", KVM_PROBE_TIMEOUTS)
    booted = "# vmtest-probe: booted" in run.results
    detail = (f"booted in {run.duration_s:.1f} s" if booted
              else run.timed_out or "no sign of life from the guest")
    progress(f"vmtest: KVM probe: {detail}")
    return booted


# -- one run --------------------------------------------------------------------------------


def base_commit_of(applied: ApplyResult) -> str:
    """The commit below the series (for a series already in the tree's history, too)."""
    if applied.base != applied.head or not applied.patches:
        return applied.base
    parent = resolve_commit(applied.worktree, f"{applied.patches[0].commit}^")
    if parent is None:
        raise KseriesError(f"cannot find the parent of {applied.patches[0].commit[:12]}")
    return parent


def run_vmtest(cache: Path, applied: ApplyResult, opts: VmOptions, out: Path) -> Outcome:
    m = machine(opts.arch)
    logs = out / "vmtest" / opts.arch
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    base = base_commit_of(applied) if opts.base else None
    progress(f"vmtest: building the {opts.arch} guest kernel(s) (small config, ccache)")
    builds, base_error = build_pair(applied.worktree, cache, m, base, applied.head, logs)
    notes = [Check(name="base kernel", status="warn",
                   summary=f"{base_error}; no comparison")] if base_error else []
    bad = [b for b in builds if b.problems]
    if bad:
        return Outcome(opts.arch, "none", "", tuple(builds), (), logs, tuple(notes) + tuple(
            Check(name=f"{b.label} kernel config", status="fail",
                  summary="; ".join(str(p) for p in b.problems[:3]), reproducer=b.reproducer)
            for b in bad))
    initrds = {b.label: pack_initramfs(applied.worktree, cache, b, opts.arch) for b in builds}
    series_build = builds[-1]
    accel, note = choose_accel(cache, m, series_build, initrds["series"], opts, logs)
    results = []
    for build in reversed(builds):  # the series first: its result matters most
        result = run_kernel(build, initrds[build.label], m, opts, accel, logs / build.label)
        results.append(result)
        if opts.keep:
            keep = logs / build.label
            shutil.copyfile(build.image, keep / Path(m.kernel_image).name)
            shutil.copyfile(initrds[build.label], keep / "initramfs.cpio")
    return Outcome(opts.arch, accel, note, tuple(builds), tuple(results), logs, tuple(notes))


def arch_check(arch: str) -> Check:
    """Can this QEMU and host run the same guest for ARCH (arm64: -M virt)? A reasoned skip
    when not: QEMU's own answer about virtio-mem on that machine, and the guest userspace."""
    m = machine(arch)
    try:
        require_arch_program(m.qemu)
    except KseriesError as err:
        return Check(name=f"{arch} guest", status="skip", summary=str(err))
    supported, detail = memory_device_support(m)
    if not supported:
        return Check(name=f"{arch} guest", status="skip",
                     summary=f"virtio-mem not usable: {detail}",
                     data={"qemu": detail})
    problem = userspace_problem(arch)
    if problem:
        return Check(name=f"{arch} guest", status="skip",
                     summary=f"not run: {detail}, but {problem}",
                     data={"qemu": detail})
    return Check(name=f"{arch} guest", status="skip",
                 summary=f"{detail}; run 'kseries vmtest --arch {arch}'",
                 data={"qemu": detail})


def stage_from(outcome: Outcome, took: float) -> Stage:
    by_label = {r.label: r for r in outcome.results}
    checks = list(outcome.extra_checks)
    series = by_label.get("series")
    if series is not None:
        checks += checks_for(series, by_label.get("base"))
    data: dict[str, Any] = {
        "arch": outcome.arch,
        "accel": outcome.accel,
        "accel_note": outcome.accel_note,
        "logs": str(outcome.logs),
        "kernels": {b.label: {"commit": b.commit, "image": str(b.image), "cached": b.cached,
                              "config": str(b.config), "build": b.reproducer}
                    for b in outcome.builds},
        "other_arches": {c.name: c.summary for c in outcome.other_arches},
    }
    if series is not None:
        data["side_by_side"] = side_by_side(series, by_label.get("base"))
        data["addresses"] = addresses(series)
        if series.guest is not None:
            data["boot_to_result_s"] = series.guest.duration_s
            data["qemu"] = series.guest.command
    checks = [replace(c, arch=c.arch or outcome.arch) for c in checks]
    status = worst([c.status for c in checks])
    failing = [c for c in checks if c.status == status and status in ("fail", "warn", "error")]
    if failing:
        summary = f"{failing[0].name}: {failing[0].summary}"
    elif series is not None and series.ktap is not None:
        passed = sum(1 for r in series.ktap.results if r.outcome == "pass")
        skipped = sum(1 for r in series.ktap.results if r.outcome == "skip")
        base_note = ", base run side by side" if "base" in by_label else ""
        summary = (f"{outcome.arch}/{outcome.accel}: {passed} guest checks passed, {skipped} "
                   f"skipped{base_note}; {data.get('boot_to_result_s', 0):.0f} s boot to "
                   "result")
    else:
        summary = "no guest results"
    for other in outcome.other_arches:
        summary += f"; {other.name}: {other.status}"
    return Stage(name="vmtest", status=status, summary=summary, duration_s=took,
                 checks=tuple(checks), log=str(outcome.logs),
                 data=data)


def addresses(result: KernelResult) -> dict[str, dict[str, list[str]]]:
    """Per test, the address sets it printed (virtio-mem ranges, kexec segments, maps)."""
    table: dict[str, dict[str, list[str]]] = {}
    for test in result.ktap.results if result.ktap else ():
        for span in spans(test):
            table.setdefault(test.name, {}).setdefault(f"{span.kind} {span.set}", []).append(
                str(span))
    return table


def skipped_stage(arch: str) -> Stage:
    """The stage for an arch this host cannot run a guest for, with QEMU's view of it."""
    with stopwatch() as took:
        check = arch_check(arch)
    return Stage(name="vmtest", status="skip", summary=check.summary, duration_s=took[0],
                 checks=(check,),
                 data={"arch": arch})


def vmtest(cache: Path, applied: ApplyResult, opts: VmOptions, out: Path) -> Stage:
    if userspace_problem(opts.arch) is not None:
        return skipped_stage(opts.arch)
    with stopwatch() as took:
        outcome = run_vmtest(cache, applied, opts, out)
        if opts.arch == "x86_64":
            outcome = replace(outcome, other_arches=(arch_check("arm64"),))
    return stage_from(outcome, took[0])


# -- interface: verify stage, subcommand ----------------------------------------------------


def vmtest_stage(state: RunState, options: VmOptions) -> Stage:
    """x86_64 with the base side by side; arm64 as a reasoned check (see userspace_problem)."""
    if userspace_problem(options.arch) is not None:
        return skipped_stage(options.arch)
    assert state.applied is not None  # needs apply when the arch can run
    return vmtest(state.ctx.cache, state.applied, options, state.ctx.out)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=tuple(MACHINES), default="x86_64",
                        help="guest architecture (default: x86_64)")
    parser.add_argument("--no-base", dest="base", action="store_false",
                        help="do not build and run the base kernel for comparison")
    parser.add_argument("--keep", action="store_true",
                        help="keep each kernel and initramfs next to its logs, to rerun the "
                             "QEMU command by hand")
    parser.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto",
                        help="QEMU accelerator (auto: TCG unless a KVM probe boot works)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="hard limit per guest run (default: 600)")
    parser.add_argument("--phases", default=None, metavar="NAME:MIB,...",
                        help="virtio-mem sizes per phase (default: boot:256,grow:512,"
                             "shrink:128; the first is the size at boot)")


def parse_phases(text: str | None) -> tuple[tuple[str, int], ...]:
    if not text:
        return DEFAULT_PHASES
    phases = []
    for item in text.split(","):
        name, _, size = item.partition(":")
        if not name.isidentifier() or not size.isdigit() or int(size) % 128:
            raise KseriesError(f"--phases: '{item}' is not NAME:MIB with MIB a multiple of "
                               "128 (the memory block size)")
        phases.append((name, int(size)))
    if phases[0][0] != "boot" or len({n for n, _ in phases}) != len(phases):
        raise KseriesError("--phases: the first phase must be 'boot' and names must differ")
    return tuple(phases)


def options_from(args: argparse.Namespace) -> VmOptions:
    return VmOptions(arch=args.arch, base=args.base, keep=args.keep, accel=args.accel,
                     timeout_s=args.timeout, phases=parse_phases(args.phases))


def options_to_args(options: VmOptions) -> list[str]:
    """The flags that differ from the defaults (so parsing them gives OPTIONS back)."""
    default = VmOptions()
    args = [] if options.arch == default.arch else [f"--arch={options.arch}"]
    args += [] if options.base else ["--no-base"]
    args += ["--keep"] if options.keep else []
    args += [] if options.accel == default.accel else [f"--accel={options.accel}"]
    args += [] if options.timeout_s == default.timeout_s else [f"--timeout={options.timeout_s}"]
    if options.phases != default.phases:
        args.append("--phases=" + ",".join(f"{name}:{mib}" for name, mib in options.phases))
    return args


def verify_options(_ctx: Context, arches: tuple[str, ...] | None) -> VmOptions:
    if arches is not None and "x86_64" not in arches:
        return VmOptions(arch=arches[0] if arches[0] == "arm64" else "x86_64")
    return VmOptions()


def render(stage: Stage) -> list[str]:
    return [f"{c.status.upper():5} {c.name}: {c.summary}" for c in stage.checks]


STAGE: StageDef[VmOptions] = StageDef(
    name="vmtest", help="boot with virtio-mem and check the kexec contract (kexec-tools)",
    run=vmtest_stage, from_args=lambda args, _ctx: options_from(args),
    for_verify=verify_options, to_args=options_to_args, configure=configure_parser,
    # A guest arch this host cannot run is a reasoned skip that needs no tree at all.
    needs=lambda o: () if userspace_problem(o.arch) is not None else ("apply",),
    tools=lambda o: () if userspace_problem(o.arch) is not None else (
        "make", "ccache", "qemu-system-x86_64", "busybox", "kexec"),
    render=render)

