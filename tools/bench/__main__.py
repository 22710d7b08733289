"""make bench: run the sections asked for (every one by default), print what each measured
and write out/bench.json. A section that cannot run says why instead of printing a number."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kseries.core.context import Context, Options, make_context
from kseries.core.errors import KseriesError

from .build import bench_build
from .callers import callers_section
from .kunit import bench_kunit
from .vmtest import bench_vmtest

SECTIONS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "callers": callers_section,
    "build": bench_build,
    "kunit": bench_kunit,
    "vmtest": bench_vmtest,
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
        except KseriesError as err:
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
