"""make bench, callers section: the whole caller check against a bare git grep."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kseries.core.context import Context
from kseries.core.proc import command_line, run
from kseries.stages.callers.check import check_callers
from kseries.stages.callers.scan import family_pattern
from kseries.stages.callers.spec import CallerCheckSpec, spec_from_api


def callers_section(ctx: Context) -> dict[str, Any]:
    tree = ctx.tree()
    result = bench_callers(tree.path, spec_from_api(ctx.config.api))
    result["target"] = "caller check <= 2x bare git grep"
    return result


def bench_callers(tree: Path, spec: CallerCheckSpec | None = None, rounds: int = 3
                  ) -> dict[str, Any]:
    """Seconds of the whole check vs a bare `git grep -n -E <names>` on TREE (warm cache).

    Each is run once to warm the page cache, then ROUNDS times; the best time counts.
    """
    spec = spec or CallerCheckSpec(("add_memory", "__add_memory", "add_memory_resource",
                                    "add_memory_driver_managed"))
    grep = ["git", "-C", str(tree), "grep", "-n", "-E", family_pattern(spec.family)]

    def time_grep() -> float:
        start = time.monotonic()
        run(grep, check=False)
        return time.monotonic() - start

    def time_check() -> float:
        start = time.monotonic()
        check_callers(tree, spec)
        return time.monotonic() - start

    time_grep()
    time_check()
    grep_s = min(time_grep() for _ in range(rounds))
    check_s = min(time_check() for _ in range(rounds))
    return {"tree": str(tree), "check_s": round(check_s, 3), "git_grep_s": round(grep_s, 3),
            "ratio": round(check_s / grep_s, 2) if grep_s else None,
            "git_grep_command": command_line(grep), "rounds": rounds}
