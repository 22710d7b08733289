"""Kernels besides the series and its base, built and run in our scratch worktree (which
ends at the head): the mutants (mutants.py), each with the scenarios that show it, and every
commit of the series (a runtime bisect: each one must boot and pass the guest checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from kseries.core.context import progress
from kseries.core.errors import KseriesError
from kseries.core.git import force_checkout
from kseries.core.report import Check
from kseries.kernel.arch_change import not_built_for
from kseries.kernel.qemu import Machine
from kseries.series.apply import ApplyResult
from kseries.stages.vmtest.checks import KernelResult, checks_for
from kseries.stages.vmtest.guest import VmOptions, arch_scenarios, pack_initramfs, run_kernel
from kseries.stages.vmtest.guest_pool import guest_workers, run_at_once
from kseries.stages.vmtest.kernel import KernelBuild, build_kernel
from kseries.stages.vmtest.mutants import Mutant, MutantRun, load_mutants, mutant_commit


def selected_mutants(names: tuple[str, ...]) -> tuple[Mutant, ...]:
    mutants = load_mutants()
    unknown = [n for n in names if n not in {m.name for m in mutants}]
    if unknown:
        raise KseriesError(f"unknown mutant {', '.join(unknown)}; use one of "
                           f"{', '.join(m.name for m in mutants)}")
    return tuple(m for m in mutants if not names or m.name in names)


def run_mutants(cache: Path, applied: ApplyResult, m: Machine, opts: VmOptions, accel: str,
                logs: Path, compile_env: Mapping[str, str]) -> tuple[MutantRun, ...]:
    """Every mutant kernel with the scenarios that show it; the worktree ends at the head."""
    quick = replace(opts, plug_timeout_s=5)  # the driver follows in 1 s (measured)
    built: list[tuple[Mutant, KernelBuild, Path] | MutantRun] = []
    try:
        for mutant in selected_mutants(opts.only_mutants):
            where = logs / f"mutant-{mutant.name}"
            progress(f"vmtest: mutant {mutant.name}: {mutant.subject}")
            try:
                commit = mutant_commit(applied.worktree, applied.head, mutant)
                build = build_kernel(applied.worktree, cache, m, f"mutant-{mutant.name}",
                                     commit, where / "build.log", compile_env)
            except KseriesError as err:
                built.append(MutantRun(mutant, {}, str(err)))
                continue
            built.append((mutant, build, pack_initramfs(applied.worktree, cache, build,
                                                         opts.arch)))
    finally:
        force_checkout(applied.worktree, applied.head)
    guests = [(mutant, partial(run_kernel, build, initrd, m, quick, accel,
                               logs / f"mutant-{mutant.name}" / scenario.name, scenario))
              for mutant, build, initrd in (b for b in built if not isinstance(b, MutantRun))
              for scenario in arch_scenarios(opts.arch, mutant.scenarios)]
    results = run_at_once([run for _, run in guests], guest_workers(opts.guests))
    statuses: dict[str, dict[str, str]] = {}
    for (mutant, _), result in zip(guests, results, strict=True):
        statuses.setdefault(mutant.name, {}).update(
            {c.name: c.status for c in checks_for(result, None) if "." in c.name})
    return tuple(b if isinstance(b, MutantRun) else MutantRun(b[0], statuses.get(b[0].name, {}))
                 for b in built)


@dataclass(frozen=True)
class CommitRun:
    """The guest at one commit of the series (not the last, which the series run is)."""

    index: int
    subject: str
    commit: str
    results: tuple[KernelResult, ...] = ()
    error: str | None = None
    # Why it was not booted: nothing it changes is built for this arch.
    skipped: str | None = None



def run_every_commit(cache: Path, applied: ApplyResult, m: Machine, opts: VmOptions,
                     accel: str, logs: Path,
                     compile_env: Mapping[str, str]) -> tuple[CommitRun, ...]:
    """A runtime bisect: every commit of the series but the last boots and runs the
    scenarios; the worktree ends at the head."""
    runs: list[CommitRun] = []
    booted: list[tuple[int, list[Callable[[], KernelResult]]]] = []
    try:
        for patch in applied.patches[:-1]:
            label = f"patch-{patch.index}"
            skipped = not_built_for(applied.worktree, patch.commit, opts.arch)
            if skipped:
                runs.append(CommitRun(patch.index, patch.subject, patch.commit, skipped=skipped))
                continue
            progress(f"vmtest: at patch {patch.index}: {patch.subject}")
            try:
                build = build_kernel(applied.worktree, cache, m, label, patch.commit,
                                     logs / label / "build.log", compile_env)
            except KseriesError as err:
                runs.append(CommitRun(patch.index, patch.subject, patch.commit, (), str(err)))
                continue
            initrd = pack_initramfs(applied.worktree, cache, build, opts.arch)
            booted.append((len(runs), [partial(run_kernel, build, initrd, m, opts, accel,
                                               logs / label / scenario.name, scenario)
                                       for scenario in arch_scenarios(opts.arch,
                                                                      opts.scenarios)]))
            runs.append(CommitRun(patch.index, patch.subject, patch.commit))
    finally:
        force_checkout(applied.worktree, applied.head)
    results = iter(run_at_once([run for _, guests in booted for run in guests],
                               guest_workers(opts.guests)))
    for at, guests in booted:
        runs[at] = replace(runs[at], results=tuple(next(results) for _ in guests))
    return tuple(runs)


def commit_checks(arch: str, runs: Sequence[CommitRun]) -> list[Check]:
    """One check per commit: it boots, every scenario runs to its end, no guest check fails."""
    checks = []
    for run in runs:
        name = f"{arch}.commit {run.index}"
        if run.skipped:
            checks.append(Check(name=name, status="skip", summary=f"{run.subject}: {run.skipped}",
                                arch=arch, step=f"patch {run.index}", rule="runtime-bisect",
                                data={"commit": run.commit}))
            continue
        if run.error:
            checks.append(Check(name=name, status="fail", summary=run.error, arch=arch,
                                step=f"patch {run.index}", rule="runtime-bisect"))
            continue
        failed = []
        for result in run.results:
            status, summary = result.health()
            if status != "pass":
                failed.append(f"{result.scenario}: {summary}")
            failed += [f"{c.name} ({c.summary})" for c in checks_for(result, None)
                       if "." in c.name and c.status == "fail"]
        scenarios = ", ".join(r.scenario for r in run.results)
        summary = (f"{run.subject}: " + (f"{len(failed)} failed: " + "; ".join(failed[:3])
                                         if failed else f"every guest check passes ({scenarios})"))
        checks.append(Check(name=name, status="fail" if failed else "pass", summary=summary,
                            arch=arch, step=f"patch {run.index}", rule="runtime-bisect",
                            data={"commit": run.commit, "failed": failed}))
    return checks
