"""make bench, kunit section: the x86_64 KUnit run with the series, first and warm."""

from __future__ import annotations

from typing import Any

from kseries.core.context import Context
from kseries.core.report import stopwatch
from kseries.series import apply as ap
from kseries.stages.kunit.stage import KunitOptions, run_variants
from kseries.stages.kunit.verdicts import REQUIRED_ARCH


def bench_kunit(ctx: Context) -> dict[str, Any]:
    """Time the x86_64 run with the series twice; the second one is the warm time."""
    tree = ctx.tree()
    applied = ap.apply_series(tree, ctx.mbox_path(), ctx.cache, ctx.config.name, ctx.revision_name)
    timings = []
    for _ in range(2):
        with stopwatch() as took:
            runs = run_variants(ctx, tree, applied, KunitOptions((REQUIRED_ARCH,)))
        timings.append((took[0], runs[0]))
    (first_s, _), (warm_s, warm) = timings
    return {"kunit_x86_64_first_s": first_s, "kunit_x86_64_warm_s": warm_s,
            "kunit_x86_64_warm_build_s": warm.build_s, "kunit_x86_64_warm_exec_s": warm.exec_s,
            "accel": warm.accel, "outcome": warm.outcome}
