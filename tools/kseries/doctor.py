"""kseries doctor: can this machine run the selected stages? One row per need, with its package.

The tools come from the stages' own declarations (StageDef.tools), so doctor and the
pre-flight check of every stage subcommand ask the same question.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kseries.core.context import Context
from kseries.core.pipeline import Planned, StageDef
from kseries.core.proc import PACKAGE_OF
from kseries.core.report import EXIT_ERROR
from kseries.core.tools import program_version
from kseries.kernel.arches import packages_of_programs
from kseries.stages.registry import BY_NAME, STAGES

MIN_FREE_GIB = 20  # one build dir per arch plus a worktree and the tree: about that much


@dataclass(frozen=True)
class Row:
    need: str
    ok: bool
    detail: str
    package: str


def program_path(name: str) -> str | None:
    """NAME beside our Python (b4 in the venv) or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def package_of(program: str) -> str:
    return {**PACKAGE_OF, **packages_of_programs()}.get(program, program)


def missing_tools(programs: Iterable[str]) -> list[str]:
    """One line per missing program, naming the Debian package to install."""
    return [f"'{p}' is not installed; install it: apt-get install {package_of(p)} "
            "(or run 'make setup')" for p in dict.fromkeys(programs) if program_path(p) is None]


def program_rows(programs: Iterable[str]) -> list[Row]:
    rows = []
    for program in sorted(set(programs)):
        found = program_path(program)
        detail = program_version(found) if found else "not installed"
        rows.append(Row(program, found is not None, detail, package_of(program)))
    return rows


def machine_rows(cache: Path) -> list[Row]:
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    probe = cache if cache.exists() else next(p for p in cache.parents if p.exists())
    free_gib = shutil.disk_usage(probe).free / 2**30
    return [
        Row("/dev/kvm", True, "usable (a probe boot decides KVM or TCG)" if kvm
            else "not usable: guests run under TCG (slower, still correct)", "-"),
        Row(f"disk at {probe}", free_gib >= MIN_FREE_GIB,
            f"{free_gib:.0f} GiB free (want {MIN_FREE_GIB})", "-"),
    ]


def selected(ctx: Context, names: Sequence[str] | None,
             arches: Sequence[str] | None) -> list[Planned[Any]]:
    only = tuple(arches) if arches else None
    stages: Sequence[StageDef[Any]] = [BY_NAME[n] for n in names] if names else STAGES
    return [Planned(s, s.for_verify(ctx, only)) for s in stages]


def table(rows: Sequence[Row]) -> list[str]:
    width = max(len(r.need) for r in rows)
    lines = [f"{'':4} {'need':{width}}  {'package':28} detail"]
    for row in rows:
        mark = "ok" if row.ok else "MISS"
        lines.append(f"{mark:4} {row.need:{width}}  {row.package:28} {row.detail}")
    return lines


def doctor_main(ctx: Context, args: argparse.Namespace) -> int:
    planned = selected(ctx, args.stage, args.arch)
    programs = {t for p in planned for t in p.stage.tools(p.options)} | {"git", "b4"}
    rows = program_rows(programs) + machine_rows(ctx.cache)
    for line in table(rows):
        print(line)
    missing = [r for r in rows if not r.ok]
    print(f"{len(rows) - len(missing)} of {len(rows)} needs met for: "
          f"{', '.join(p.stage.name for p in planned)}")
    return EXIT_ERROR if missing else 0
