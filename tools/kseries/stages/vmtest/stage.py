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
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from kseries.core.context import Context, progress
from kseries.core.errors import KseriesError
from kseries.core.git import force_checkout, resolve_commit
from kseries.core.paths import OVERLAY_DIR
from kseries.core.pipeline import RunState, StageDef
from kseries.core.proc import require_program
from kseries.core.report import Check, Stage, stopwatch, worst
from kseries.kernel import ktap, kvm
from kseries.kernel.arches import arch_of_host, get_arch, require_arch_program
from kseries.kernel.qemu import (
    MACHINES,
    MIB,
    DeviceRequests,
    Guest,
    Machine,
    Timeouts,
    VirtioMem,
    machine,
    memory_device_support,
    run_guest,
)
from kseries.series.apply import ApplyResult
from kseries.stages.vmtest import initramfs as ir
from kseries.stages.vmtest.checks import KernelResult, checks_for, side_by_side, spans
from kseries.stages.vmtest.kernel import (
    VMCORE_SOURCE,
    KernelBuild,
    build_kernel,
    build_pair,
    helper_binary,
)
from kseries.stages.vmtest.mutants import MutantRun, load_mutants, mutant_checks, mutant_commit

OVERLAY = OVERLAY_DIR / "vmtest"
SELFTEST_DIR = "tools/testing/selftests/memory-hotplug"
DEFAULT_PHASES: tuple[tuple[str, int], ...] = (("boot", 256), ("grow", 512), ("shrink", 128))
GUEST_PROGRAMS = {"usr/sbin/kexec": "kexec", "bin/bash": "bash",
                  "usr/bin/makedumpfile": "makedumpfile"}
INNER_INITRD = "boot/initrd.cpio"  # the guest's copy of its initramfs, for the next kernel
# Sizes that are not a multiple of the 128 MiB memory block: the last block is partly
# plugged, which is what the virtio-mem vmcore callback has to hide (2 MiB device blocks).
KDUMP_MIB = 200
HOTPLUG_SIZES = (456, 328)  # crash_hotplug: grow, then shrink, after the capture kernel loads
CRASHKERNEL = "192M"  # the capture kernel, its initramfs and makedumpfile's dump under TCG
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
    # also build and run every mutant kernel (mutants.py): does each check bite?
    mutants: bool = False
    # how long the guest waits for the driver to follow a resize (a mutant may never)
    plug_timeout_s: int = 120
    scenarios: tuple[str, ...] = ()  # () = all of SCENARIOS

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


SCENARIOS: tuple[Scenario, ...] = (
    # phases, then kexec_load_reboot, kexec_file_reboot and kdump_load (kexec -p)
    Scenario("kexec", "test"),
    Scenario("kdump_file", "kdump_file", KDUMP_MIB),
    Scenario("crash_hotplug", "crash_hotplug", 128),
    # the controls hot-add memory nothing backs: no kexec may follow them
    Scenario("control", "control", 128),
)


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
    mutant_runs: tuple[MutantRun, ...] = ()


# -- the guest ------------------------------------------------------------------------------


def kernel_cmdline(m: Machine, opts: VmOptions, mode: str = "test",
                   boot_mib: int | None = None) -> str:
    phases = ",".join(f"{name}:{mib}" for name, mib in opts.phases)
    sizes = ",".join(str(mib) for mib in HOTPLUG_SIZES)
    return (f"console={m.console} crashkernel={CRASHKERNEL} "
            "memhp_default_state=online_movable panic=-1 oops=panic "
            f"vmtest.mode={mode} vmtest.phases={phases} "
            f"vmtest.boot_size={boot_mib or opts.phases[0][1]} vmtest.kdump_size={KDUMP_MIB} "
            f"vmtest.hotplug_sizes={sizes} vmtest.plug_timeout={opts.plug_timeout_s}")


def userspace_problem(arch: str) -> str | None:
    """Why the host's busybox/kexec-tools/bash cannot run in an ARCH guest, if they cannot."""
    host = arch_of_host(platform.machine())
    if host is None or host.name != arch:
        return (f"the guest needs {arch} builds of busybox-static, kexec-tools and bash; this "
                f"{platform.machine()} host has only its own (Debian multiarch :{arch} "
                "packages would be needed)")
    return None


def initramfs_entries(worktree: Path, kernel: Path, helper: Path,
                      vmcore_reader: Path) -> list[ir.Entry]:
    """The guest's whole userspace, see the module docstring."""
    entries = ir.base_layout() + ir.busybox(Path(require_program("busybox")))
    for path, name in GUEST_PROGRAMS.items():
        entries += ir.program(path, Path(require_program(name)))
    entries += [ir.host_file("init", OVERLAY / "init", executable=True),
                ir.host_file("vmtest/vmtest.sh", OVERLAY / "vmtest.sh", executable=True),
                ir.host_file("vmtest/kexec-file-debug", helper, executable=True),
                ir.host_file("vmtest/vmcore-read", vmcore_reader, executable=True),
                ir.host_file("boot/vmlinuz", kernel)]
    entries += ir.directory_tree("selftests/memory-hotplug", worktree / SELFTEST_DIR)
    return entries


def pack_initramfs(worktree: Path, cache: Path, build: KernelBuild, arch: str) -> Path:
    helper = helper_binary(cache, OVERLAY, arch)
    reader = helper_binary(cache, OVERLAY, arch, VMCORE_SOURCE)
    out = cache / "vm" / arch / f"initramfs-{build.label}.cpio"
    return ir.write_archive(initramfs_entries(worktree, build.image, helper, reader), out,
                            inner=INNER_INITRD)


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
        for scenario in selected_scenarios(opts.scenarios):
            where = logs / build.label / scenario.name
            results.append(run_kernel(build, initrds[build.label], m, opts, accel, where,
                                      scenario))
        if opts.keep:
            keep = logs / build.label
            shutil.copyfile(build.image, keep / Path(m.kernel_image).name)
            shutil.copyfile(initrds[build.label], keep / "initramfs.cpio")
    mutant_runs = run_mutants(cache, applied, m, opts, accel, logs) if opts.mutants else ()
    return Outcome(opts.arch, accel, note, tuple(builds), tuple(results), logs, tuple(notes),
                   mutant_runs=mutant_runs)


def selected_scenarios(names: tuple[str, ...]) -> tuple[Scenario, ...]:
    if not names:
        return SCENARIOS
    unknown = [n for n in names if n not in {s.name for s in SCENARIOS}]
    if unknown:
        raise KseriesError(f"unknown scenario {', '.join(unknown)}; use one of "
                           f"{', '.join(s.name for s in SCENARIOS)}")
    return tuple(s for s in SCENARIOS if s.name in names)


def run_mutants(cache: Path, applied: ApplyResult, m: Machine, opts: VmOptions, accel: str,
                logs: Path) -> tuple[MutantRun, ...]:
    """Every mutant kernel with the scenarios that show it; the worktree ends at the head."""
    quick = replace(opts, plug_timeout_s=30)
    runs = []
    try:
        for mutant in load_mutants():
            where = logs / f"mutant-{mutant.name}"
            progress(f"vmtest: mutant {mutant.name}: {mutant.subject}")
            try:
                commit = mutant_commit(applied.worktree, applied.head, mutant)
                build = build_kernel(applied.worktree, cache, m, f"mutant-{mutant.name}",
                                     commit, where / "build.log")
            except KseriesError as err:
                runs.append(MutantRun(mutant, {}, str(err)))
                continue
            initrd = pack_initramfs(applied.worktree, cache, build, opts.arch)
            statuses: dict[str, str] = {}
            for scenario in selected_scenarios(mutant.scenarios):
                result = run_kernel(build, initrd, m, quick, accel, where / scenario.name,
                                    scenario)
                statuses.update({c.name: c.status for c in checks_for(result, None)
                                 if "." in c.name})
            runs.append(MutantRun(mutant, statuses))
    finally:
        force_checkout(applied.worktree, applied.head)
    return tuple(runs)


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


def scenario_pairs(results: tuple[KernelResult, ...]
                   ) -> list[tuple[KernelResult, KernelResult | None]]:
    """Per scenario, the series run and the base run (if there is one), in run order."""
    base = {r.scenario: r for r in results if r.label == "base"}
    return [(r, base.get(r.scenario)) for r in results if r.label == "series"]


def stage_from(outcome: Outcome, took: float) -> Stage:
    pairs = scenario_pairs(outcome.results)
    checks = list(outcome.extra_checks)
    for series, base in pairs:
        checks += checks_for(series, base, outcome.arch)
    if outcome.mutant_runs:
        prefix = f"{outcome.arch}."
        series_statuses = {c.name.removeprefix(prefix): c.status for c in checks
                           if c.name.startswith(prefix)}
        checks += mutant_checks(outcome.arch, series_statuses, outcome.mutant_runs)
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
    if pairs:
        data["side_by_side"] = [row for s, b in pairs for row in side_by_side(s, b)]
        data["addresses"] = {k: v for s, _ in pairs for k, v in addresses(s).items()}
        data["scenarios"] = {s.scenario: scenario_data(s) for s, _ in pairs}
        data["boot_to_result_s"] = round(sum(s.guest.duration_s for s, _ in pairs
                                             if s.guest is not None), 1)
        data["device_usage"] = {s.scenario: [asdict(u) for u in s.usages] for s, _ in pairs
                                if s.usages}
    checks = [replace(c, arch=c.arch or outcome.arch) for c in checks]
    status = worst([c.status for c in checks])
    failing = [c for c in checks if c.status == status and status in ("fail", "warn", "error")]
    results = [r for s, _ in pairs if s.ktap is not None for r in s.ktap.results]
    if failing:
        summary = f"{failing[0].name}: {failing[0].summary}"
    elif results:
        passed = sum(1 for r in results if r.outcome == "pass")
        skipped = sum(1 for r in results if r.outcome == "skip")
        base_note = ", base run side by side" if any(b for _, b in pairs) else ""
        summary = (f"{outcome.arch}/{outcome.accel}: {passed} guest checks passed, {skipped} "
                   f"skipped in {len(pairs)} scenarios{base_note}; "
                   f"{data.get('boot_to_result_s', 0):.0f} s of guest time")
    else:
        summary = "no guest results"
    for other in outcome.other_arches:
        summary += f"; {other.name}: {other.status}"
    return Stage(name="vmtest", status=status, summary=summary, duration_s=took,
                 checks=tuple(checks), log=str(outcome.logs),
                 data=data)


def scenario_data(result: KernelResult) -> dict[str, Any]:
    """What a reader wants per scenario: how long, through which kernels, the QEMU command."""
    guest = result.guest
    if guest is None:
        return {}
    kernels = [line.split(":", 1)[1].strip() for line in guest.results.splitlines()
               if line.startswith("# vmtest-kernel:")]
    return {"duration_s": guest.duration_s, "kernels": kernels, "qemu": guest.command,
            "events": list(guest.events)}


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
    parser.add_argument("--scenario", dest="scenarios", action="append",
                        choices=tuple(sc.name for sc in SCENARIOS), metavar="NAME",
                        help="run only this scenario (repeatable; default: all of "
                             f"{', '.join(sc.name for sc in SCENARIOS)})")
    parser.add_argument("--mutants", action="store_true",
                        help="also build and run every mutant kernel of "
                             "kernel-overlay/vmtest/mutants/ (verify does): each check must "
                             "fail with the mutant that names it")
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
                     timeout_s=args.timeout, phases=parse_phases(args.phases),
                     mutants=args.mutants, scenarios=tuple(args.scenarios or ()))


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
    args += [f"--scenario={name}" for name in options.scenarios]
    args += ["--mutants"] if options.mutants else []
    return args


def verify_options(_ctx: Context, arches: tuple[str, ...] | None) -> VmOptions:
    """verify also runs the mutants: its report says which check each one kills."""
    if arches is not None and "x86_64" not in arches:
        return VmOptions(arch=arches[0] if arches[0] == "arm64" else "x86_64", mutants=True)
    return VmOptions(mutants=True)


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

