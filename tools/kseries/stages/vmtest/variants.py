"""Kernels besides the series and its base: the mutants (mutants.py), each with the
scenarios that show it, built and run in our scratch worktree, which ends at the head.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kseries.core.context import progress
from kseries.core.errors import KseriesError
from kseries.core.git import force_checkout
from kseries.kernel.qemu import Machine
from kseries.series.apply import ApplyResult
from kseries.stages.vmtest.checks import checks_for
from kseries.stages.vmtest.guest import VmOptions, pack_initramfs, run_kernel, selected_scenarios
from kseries.stages.vmtest.kernel import build_kernel
from kseries.stages.vmtest.mutants import Mutant, MutantRun, load_mutants, mutant_commit


def selected_mutants(names: tuple[str, ...]) -> tuple[Mutant, ...]:
    mutants = load_mutants()
    unknown = [n for n in names if n not in {m.name for m in mutants}]
    if unknown:
        raise KseriesError(f"unknown mutant {', '.join(unknown)}; use one of "
                           f"{', '.join(m.name for m in mutants)}")
    return tuple(m for m in mutants if not names or m.name in names)


def run_mutants(cache: Path, applied: ApplyResult, m: Machine, opts: VmOptions, accel: str,
                logs: Path) -> tuple[MutantRun, ...]:
    """Every mutant kernel with the scenarios that show it; the worktree ends at the head."""
    quick = replace(opts, plug_timeout_s=30)
    runs = []
    try:
        for mutant in selected_mutants(opts.only_mutants):
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
