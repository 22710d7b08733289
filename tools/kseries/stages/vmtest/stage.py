"""kseries vmtest: boot the patched (and the base) kernel in QEMU with a virtio-mem device and
check the kexec contract with the real kexec-tools.

Flow: build small guest kernels (vmkernel), pack an initramfs per kernel (busybox-static,
kexec-tools with its libraries, bash, our checks from kernel-overlay/vmtest/, the tree's
memory-hotplug selftest, the kernel itself as the kexec image), boot it under TCG (KVM only
when a probe boot proves it works), resize the device through QMP when the guest asks,
and turn the guest's TAP into report checks, series next to base (vmchecks).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from kseries.core.context import progress
from kseries.core.errors import KseriesError
from kseries.core.git import resolve_commit
from kseries.core.pipeline import RunState, StageDef
from kseries.core.report import Check, Stage, stopwatch, worst
from kseries.kernel import kvm
from kseries.kernel.arches import get_arch, require_arch_program
from kseries.kernel.qemu import (
    MACHINES,
    Guest,
    Machine,
    Timeouts,
    VirtioMem,
    machine,
    memory_device_support,
    run_guest,
)
from kseries.series.apply import ApplyResult
from kseries.stages.vmtest.checks import KernelResult, checks_for, side_by_side, spans
from kseries.stages.vmtest.guest import (
    NOT_ON_ARCH,
    VmOptions,
    arch_scenarios,
    kernel_cmdline,
    pack_initramfs,
    run_kernel,
    selected_scenarios,
)
from kseries.stages.vmtest.guest_pool import guest_workers, run_at_once
from kseries.stages.vmtest.kernel import (
    KernelBuild,
    build_pair,
)
from kseries.stages.vmtest.mutants import (
    MutantRun,
    load_mutants,
    mutant_checks,
)
from kseries.stages.vmtest.options import (
    configure_parser,
    options_from,
    options_to_args,
    verify_options,
)
from kseries.stages.vmtest.variants import (
    CommitRun,
    commit_checks,
    run_every_commit,
    run_mutants,
)

KVM_PROBE_TIMEOUTS = Timeouts(total_s=30.0, silent_s=25.0)
EXIT_WARN = 250


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
    commit_runs: tuple[CommitRun, ...] = ()


# -- the guest ------------------------------------------------------------------------------


# Arches with no guest here, and why: their coverage is KUnit's.
NO_GUEST = {
    "powerpc": "no virtio-mem in Linux 6.12 (VIRTIO_MEM depends on X86_64 || ARM64 || RISCV, "
               "drivers/virtio/Kconfig); the KUnit suite covers powerpc, its kexec_file hole "
               "search included",
    "s390": "no virtio-mem in Linux 6.12 (VIRTIO_MEM depends on X86_64 || ARM64 || RISCV, "
            "drivers/virtio/Kconfig); the KUnit suite covers s390",
}


def userspace_problem(arch: str) -> str | None:
    """Why no vmtest guest runs for ARCH, if none does. A guest of another arch than the
    host's gets Debian's packages of its arch (userland.py)."""
    if arch in NO_GUEST:
        return NO_GUEST[arch]
    if arch not in MACHINES:
        return f"no vmtest guest is described for {arch} (kernel/arches.toml)"
    return None


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


def run_vmtest(cache: Path, applied: ApplyResult, opts: VmOptions, out: Path,
               compile_env: Mapping[str, str]) -> Outcome:
    """OPTS.arch's guest kernels built (make gets COMPILE_ENV: a shared ccache, distcc) and
    run: the base and the series side by side, then every commit and the mutants."""
    m = machine(opts.arch)
    logs = out / "vmtest" / opts.arch
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    base = base_commit_of(applied) if opts.base else None
    progress(f"vmtest: building the {opts.arch} guest kernel(s) (small config, ccache)")
    builds, base_error = build_pair(applied.worktree, cache, m, base, applied.head, logs,
                                    compile_env)
    notes = [Check(name="base kernel", status="warn",
                   summary=f"{base_error}; no comparison")] if base_error else []
    notes += [Check(name=f"{opts.arch}.{name}", status="skip", summary=why, arch=opts.arch)
              for name, why in NOT_ON_ARCH.get(opts.arch, {}).items()
              if name in {sc.name for sc in selected_scenarios(opts.scenarios)}]
    bad = [b for b in builds if b.problems]
    if bad:
        return Outcome(opts.arch, "none", "", tuple(builds), (), logs, tuple(notes) + tuple(
            Check(name=f"{b.label} kernel config", status="fail",
                  summary="; ".join(str(p) for p in b.problems[:3]), reproducer=b.reproducer)
            for b in bad))
    initrds = {b.label: pack_initramfs(applied.worktree, cache, b, opts.arch) for b in builds}
    series_build = builds[-1]
    accel, note = choose_accel(cache, m, series_build, initrds["series"], opts, logs)
    runs = [partial(run_kernel, build, initrds[build.label], m, opts, accel,
                    logs / build.label / scenario.name, scenario)
            for build in reversed(builds)  # the series first: its result matters most
            for scenario in arch_scenarios(opts.arch, opts.scenarios)
            if build.label != "base" or scenario.with_base]
    results = run_at_once(runs, guest_workers(opts.guests))
    for build in builds:
        if opts.keep:
            keep = logs / build.label
            shutil.copyfile(build.image, keep / Path(m.kernel_image).name)
            shutil.copyfile(initrds[build.label], keep / "initramfs.cpio")
    commit_runs = (run_every_commit(cache, applied, m, opts, accel, logs, compile_env)
                   if opts.every_commit else ())
    mutant_runs = (run_mutants(cache, applied, m, opts, accel, logs, compile_env)
                   if opts.mutants else ())
    return Outcome(opts.arch, accel, note, tuple(builds), tuple(results), logs, tuple(notes),
                   mutant_runs=mutant_runs, commit_runs=commit_runs)


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
    checks += commit_checks(outcome.arch, outcome.commit_runs)
    checks += outcome.other_arches  # the reasoned skips of arches without a guest
    if outcome.mutant_runs:
        # The table is of the guest checks (<arch>.PHASE.CHECK), what a mutant's kernel
        # runs. "<arch>.commit N" (the runtime bisect) is not one: it fails when a guest
        # check fails at an earlier commit of the series, and those checks are in the table.
        prefix = f"{outcome.arch}."
        series_statuses = {name: c.status for c in checks if c.name.startswith(prefix)
                           and "." in (name := c.name.removeprefix(prefix))}
        checks += mutant_checks(outcome.arch, series_statuses, outcome.mutant_runs,
                                complete=len(outcome.mutant_runs) == len(load_mutants()))
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
        problem = userspace_problem(arch)
        check = (arch_check(arch) if arch in MACHINES and problem is None else
                 Check(name=f"{arch} guest", status="skip", summary=str(problem)))
    return Stage(name="vmtest", status="skip", summary=check.summary, duration_s=took[0],
                 checks=(check,),
                 data={"arch": arch})


def vmtest(cache: Path, applied: ApplyResult, opts: VmOptions, out: Path,
           compile_env: Mapping[str, str]) -> Stage:
    """OPTS.arch with everything asked for, then each of OPTS.more_arches (the series only:
    no base, mutants or commits), as one stage; the arches without a guest as reasoned
    skips."""
    if userspace_problem(opts.arch) is not None:
        return skipped_stage(opts.arch)
    stages = []
    with stopwatch() as took:
        skips = tuple(Check(name=f"{a} guest", status="skip", summary=why, arch=a)
                      for a, why in NO_GUEST.items())
        outcome = replace(run_vmtest(cache, applied, opts, out, compile_env),
                          other_arches=skips)
        stages.append(stage_from(outcome, 0.0))
        for arch in opts.more_arches:
            more = replace(opts, arch=arch, base=False, mutants=False, every_commit=False,
                           more_arches=())
            stages.append(stage_from(run_vmtest(cache, applied, more, out, compile_env), 0.0))
    return merge_arches(stages, took[0])


def merge_arches(stages: list[Stage], took: float) -> Stage:
    """One stage from one per arch: every check (the second arch's guest-health checks
    named after it), the first arch's data on top and every arch's under "arches"."""
    first, rest = stages[0], stages[1:]
    checks = list(first.checks)
    for stage in rest:
        arch = str(stage.data.get("arch"))
        checks += [c if c.name.startswith(f"{arch}.") else replace(c, name=f"{arch}: {c.name}")
                   for c in stage.checks]
    data = dict(first.data)
    data["arches"] = {str(s.data.get("arch")): s.data for s in stages}
    summary = "; ".join([first.summary] + [s.summary for s in rest])
    return replace(first, status=worst([s.status for s in stages]), summary=summary,
                   duration_s=took, checks=tuple(checks), data=data)


def split_by_arch(options: VmOptions) -> tuple[tuple[str, VmOptions], ...]:
    """One job per guest arch, each as vmtest() runs it: the first with everything asked
    for, the others with the series only."""
    first = (options.arch, replace(options, more_arches=()))
    return (first, *((arch, replace(options, arch=arch, base=False, mutants=False,
                                    every_commit=False, more_arches=()))
                     for arch in options.more_arches))


def merge_jobs(stages: Sequence[Stage]) -> Stage:
    """Per-arch job stages as vmtest() would have made them in one run: each job also has
    the other arches' reasoned skips, which only the first arch's keeps."""
    skips = {f"{arch} guest" for arch in NO_GUEST}
    rest = [replace(s, checks=tuple(c for c in s.checks if c.name not in skips))
            for s in stages[1:]]
    return merge_arches([*stages[:1], *rest], round(sum(s.duration_s for s in stages), 3))


# -- interface: verify stage, subcommand ----------------------------------------------------


def vmtest_stage(state: RunState, options: VmOptions) -> Stage:
    """x86_64 with the base side by side; arm64 as a reasoned check (see userspace_problem)."""
    if userspace_problem(options.arch) is not None:
        return skipped_stage(options.arch)
    assert state.applied is not None  # needs apply when the arch can run
    return vmtest(state.ctx.cache, state.applied, options, state.ctx.out,
                  state.ctx.compile_env)


def render(stage: Stage) -> list[str]:
    return [f"{c.status.upper():5} {c.name}: {c.summary}" for c in stage.checks]


STAGE: StageDef[VmOptions] = StageDef(
    name="vmtest", help="boot with virtio-mem and check the kexec contract (kexec-tools)",
    run=vmtest_stage, from_args=lambda args, _ctx: options_from(args),
    for_verify=verify_options, to_args=options_to_args, configure=configure_parser,
    # A guest arch this host cannot run is a reasoned skip that needs no tree at all.
    needs=lambda o: () if userspace_problem(o.arch) is not None else ("apply",),
    tools=lambda o: () if userspace_problem(o.arch) is not None else (
        "make", "ccache", machine(o.arch).qemu, "busybox", "kexec", "makedumpfile",
        *(machine(a).qemu for a in o.more_arches)),
    render=render, split=split_by_arch, merge=merge_jobs)

