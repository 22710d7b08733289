"""make bench: speed figures printed as ratios (never a timed test; this machine is noisy).

Each section calls the bench_* function of the module that owns the stage and prints what
it measured. A section that cannot run says why instead of printing a number.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kseries.core.context import Context, Options, make_context
from kseries.core.errors import KseriesError


def callers_section(ctx: Context) -> dict[str, Any]:
    from kseries.stages.callers.check import bench_callers
    from kseries.stages.callers.spec import spec_from_api

    tree = ctx.tree()
    result = bench_callers(tree.path, spec_from_api(ctx.config.api))
    result["target"] = "caller check <= 2x bare git grep"
    return result


def build_section(ctx: Context) -> dict[str, Any]:
    from kseries.stages.build.stage import bench_build

    return bench_build(ctx)


def kunit_section(ctx: Context) -> dict[str, Any]:
    from kseries.stages.kunit.stage import bench_kunit

    return bench_kunit(ctx)


def vmtest_section(ctx: Context) -> dict[str, Any]:
    from kseries.stages.vmtest.stage import bench_vmtest

    return bench_vmtest(ctx)


SECTIONS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "callers": callers_section,
    "build": build_section,
    "kunit": kunit_section,
    "vmtest": vmtest_section,
}


def main(argv: list[str]) -> int:
    wanted = argv or list(SECTIONS)
    unknown = [name for name in wanted if name not in SECTIONS]
    if unknown:
        print(f"bench: unknown section {unknown}; known: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    ctx = make_context(Options(None, None, None, None, None, Path("out")))
    results: dict[str, Any] = {}
    for name in wanted:
        print(f"== {name}", flush=True)
        try:
            results[name] = SECTIONS[name](ctx)
        except (KseriesError, ImportError) as err:
            results[name] = {"error": str(err)}
        for key, value in results[name].items():
            print(f"  {key}: {value}")
    out = Path("out")
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print("written: out/bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
