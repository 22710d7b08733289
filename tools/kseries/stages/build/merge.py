"""The build stage as jobs (kseries plan): one job per arch, and the per-arch stages merged
back into the one a build of all those arches writes. Only coverage and bisect look across
arches; they are redone from the merged per-file matrix and the first broken patch of each
arch, so a merged stage holds the same checks as a serial one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from kseries.core.report import Stage, stage_from_checks
from kseries.kernel.arches import ARCHES
from kseries.stages.build.checks import bisect_check_of, coverage_check
from kseries.stages.build.options import BuildOptions

CROSS_ARCH_CHECKS = ("coverage", "bisect")


def split_by_arch(options: BuildOptions) -> tuple[tuple[str, BuildOptions], ...]:
    return tuple((arch.name, replace(options, arches=(arch,))) for arch in options.arches)


def merge_arch_stages(stages: Sequence[Stage]) -> Stage:
    """Per-arch build stages, in arch order, as one."""
    checks = [c for s in stages for c in s.checks if c.name not in CROSS_ARCH_CHECKS]
    matrix = merged_matrix(s.data.get("coverage", {}) for s in stages)
    arches: dict[str, Any] = {}
    first_bad: dict[str, str] = {}
    for stage in stages:
        arches.update(stage.data.get("arches", {}))
        first_bad.update(stage.data.get("first_bad", {}))
    if stages and any(c.name == "coverage" for s in stages for c in s.checks):
        checks.append(coverage_check(matrix, len(arches) < len(ARCHES)))
    if any(c.name == "bisect" for s in stages for c in s.checks):
        checks.append(bisect_check_of(first_bad, list(arches)))
    data = {**(stages[0].data if stages else {}), "coverage": matrix, "arches": arches,
            "first_bad": first_bad}
    return stage_from_checks("build", checks, round(sum(s.duration_s for s in stages), 3),
                             data=data, reproducer=" && ".join(
                                 s.reproducer for s in stages if s.reproducer))


def merged_matrix(rows: Any) -> dict[str, dict[str, Mapping[str, str]]]:
    """file -> arch -> cell over every per-arch matrix (each holds its own arch)."""
    matrix: dict[str, dict[str, Mapping[str, str]]] = {}
    for part in rows:
        for source, row in part.items():
            matrix.setdefault(source, {}).update(row)
    return matrix
