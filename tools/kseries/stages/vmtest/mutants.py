"""Mutant kernels: prove that each guest check bites.

A mutant is a small patch on top of the series (kernel-overlay/vmtest/mutants/*.patch) that
breaks exactly what some checks guard. Its commit message says which scenarios show it
("Scenarios: kexec kdump_file") and which checks it must make fail ("Kills: PHASE.CHECK").
The stage builds each mutant kernel, runs its scenarios, and reports a table: per check, the
mutants that made it fail. A mutant that does not kill a check it names is a failed check:
that check (or the mutant) no longer tests what it claims.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.core.errors import KseriesError
from kseries.core.git import am, am_abort, force_checkout, head_commit
from kseries.core.paths import OVERLAY_DIR
from kseries.core.report import Check, Status
from kseries.series.apply import APPLY_IDENTITY

MUTANTS_DIR = OVERLAY_DIR / "vmtest" / "mutants"
# Checks of what user space decides, which no kernel mutant here breaks: said in the table.
# (kdump_dumps_virtio_mem was one until its check took what must be dumped from sysfs: now
# resource-not-named-system-ram kills it through the names kexec-tools reads.)
USER_SPACE_DECIDES: dict[str, str] = {}
KILLS_RE = re.compile(r"^Kills: (\S+)\s*$", re.MULTILINE)
SCENARIOS_RE = re.compile(r"^Scenarios: (.+)$", re.MULTILINE)
SUBJECT_RE = re.compile(r"^Subject: (?:\[PATCH\] )?(.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Mutant:
    name: str
    patch: Path
    subject: str
    scenarios: tuple[str, ...]
    kills: tuple[str, ...]  # PHASE.CHECK, without the arch


def load_mutant(patch: Path) -> Mutant:
    text = patch.read_text()
    message = text.split("\n---\n", 1)[0]
    scenarios = SCENARIOS_RE.search(message)
    subject = SUBJECT_RE.search(message)
    kills = tuple(KILLS_RE.findall(message))
    if scenarios is None or subject is None or not kills:
        raise KseriesError(f"mutant {patch} needs a Subject:, a 'Scenarios:' line and at least "
                           "one 'Kills: PHASE.CHECK' line in its commit message")
    return Mutant(patch.stem, patch, subject.group(1).strip(),
                  tuple(scenarios.group(1).split()), kills)


def load_mutants(directory: Path = MUTANTS_DIR) -> tuple[Mutant, ...]:
    return tuple(load_mutant(p) for p in sorted(directory.glob("*.patch")))


def mutant_commit(worktree: Path, head: str, mutant: Mutant) -> str:
    """HEAD plus MUTANT's patch as one commit in our scratch WORKTREE (left checked out there).
    The patch's own date and our fixed committer make the commit id the same on every run,
    so the mutant kernel image is cached like any other."""
    force_checkout(worktree, head)
    applied = am(worktree, mutant.patch, APPLY_IDENTITY)
    if applied.returncode != 0:
        am_abort(worktree, APPLY_IDENTITY)
        force_checkout(worktree, head)
        last = (applied.output.strip().splitlines() or ["no output"])[-1]
        raise KseriesError(f"mutant {mutant.name} does not apply on the series ({last}); "
                           f"refresh {mutant.patch} against the current revision")
    return head_commit(worktree)


@dataclass(frozen=True)
class MutantRun:
    """What one mutant did to the checks: PHASE.CHECK -> status with the mutant kernel."""

    mutant: Mutant
    statuses: Mapping[str, str]
    error: str | None = None


def kill_table(series: Mapping[str, str], runs: Sequence[MutantRun]) -> dict[str, list[str]]:
    """Per check that passed with the series, the mutants that made it fail."""
    table: dict[str, list[str]] = {name: [] for name, status in series.items()
                                   if status == "pass"}
    for run in runs:
        for name, status in run.statuses.items():
            if name in table and status == "fail":
                table[name].append(run.mutant.name)
    return table


def mutant_checks(arch: str, series: Mapping[str, str], runs: Sequence[MutantRun],
                  complete: bool = True) -> list[Check]:
    """One check per mutant (did it kill what it names?) and one for the whole table, which
    warns about checks no mutant killed when every mutant ran (COMPLETE), else only says."""
    checks = []
    for run in runs:
        m = run.mutant
        name = f"{arch}.mutant.{m.name}"
        if run.error:
            checks.append(Check(name=name, status="fail", summary=run.error, arch=arch,
                                step="mutant", rule="mutant-kills"))
            continue
        survived = [k for k in m.kills if run.statuses.get(k) != "fail"]
        status: Status = "fail" if survived else "pass"
        summary = (f"{m.subject}: " + (f"did not kill {', '.join(survived)} (status: "
                   + ", ".join(f"{k} {run.statuses.get(k, 'missing')}" for k in survived) + ")"
                   if survived else f"killed {', '.join(m.kills)}"))
        killed = sorted(k for k, s in run.statuses.items() if s == "fail")
        checks.append(Check(name=name, status=status, summary=summary, arch=arch,
                            step="mutant", rule="mutant-kills",
                            data={"patch": str(m.patch), "scenarios": list(m.scenarios),
                                  "kills": list(m.kills), "failed_checks": killed}))
    table = kill_table(series, runs)
    alive = sorted(name for name, killers in table.items() if not killers)
    summary = (f"{len(table) - len(alive)} of {len(table)} passing checks killed by a mutant"
               + (f"; no mutant yet for: {', '.join(alive)}" if alive else ""))
    why = {rule: reason for rule, reason in USER_SPACE_DECIDES.items()
           if any(name.split(".", 1)[-1] == rule for name in alive)}
    summary += "".join(f" ({rule}: {reason})" for rule, reason in why.items())
    table_status: Status = "pass" if not alive else "warn" if complete else "skip"
    if not complete:
        summary += " (only the mutants asked for ran)"
    checks.append(Check(name=f"{arch}.mutant table", status=table_status,
                        summary=summary, arch=arch, step="mutant", rule="mutant-table",
                        data={"table": table}))
    return checks
