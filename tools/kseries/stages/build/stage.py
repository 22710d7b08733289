"""The per-arch build bot: `kseries build` and the build stage of `kseries verify`.

What is compiled: every .c file the series touches plus every file that calls a function
whose definition or prototype the series touches (found with git grep and confirmed as a
call by ctokens), each on every arch whose config can build it (gating symbols from the
Makefiles, kconfiglib for the reason when it cannot). Only objects are built (make
path/file.o after the implicit prepare), with W=1, ccache and -j$(nproc), in one O= build
dir per arch under <cache>/build/.

Steps, all in the one scratch worktree: the base (results cached per object while the base
and the config stay the same), then each patch of the series (only the objects that patch
touches or that include a header it touches; the last patch builds every object), and sparse
(C=2) on x86_64 for the touched files. Warnings are compared with the base as sets
(kwarn.py). An object whose inputs (command, source, every included header, .config) are
the same as in an earlier build is not built again: what that build printed is reused. The
worktree is put back to the series' head at the end, also on Ctrl-C.

This module holds the entry points; one module per job does the rest: plan (what to
compile), coverage (per-arch config, which arch builds which file), make (one make run, the
per-object result cache), execute (base, patches, sparse), checks and summary (the Stage),
run (all of it in order); options holds BuildOptions and the make flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kseries.core.context import Context
from kseries.core.proc import require_program
from kseries.core.report import Report, Stage
from kseries.kernel.arches import ARCHES, check_toolchain, get_arch
from kseries.stages.build.options import SPARSE_ARCH, BuildOptions
from kseries.stages.build.run import run_build

if TYPE_CHECKING:
    from kseries.stages.basic import Run

EXIT_WARN = 250


def build_stage(run: Run) -> Stage:
    """The build stage of kseries verify (every arch of series.toml, base, bisect, sparse)."""
    if run.applied is None or run.tree is None:
        return Stage("build", "skip", "series not applied", 0.0)
    options = BuildOptions(tuple(get_arch(a) for a in run.ctx.config.arches))
    for arch in options.arches:
        check_toolchain(arch)
    callers = run.extra.get("caller_files")
    return run_build(run.ctx, run.tree, run.applied, options,
                     callers if isinstance(callers, Mapping) else None)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", action="append", metavar="ARCH",
                        help=f"build for ARCH (repeatable; one of {', '.join(ARCHES)}; "
                             "default: the arches of series.toml)")
    parser.add_argument("--no-base", action="store_true",
                        help="do not build the base (no new-warning comparison)")
    parser.add_argument("--no-bisect", action="store_true",
                        help="build only the head, not every patch")
    parser.add_argument("--no-sparse", action="store_true", help="skip sparse on x86_64")


def options_from_args(ctx: Context, args: argparse.Namespace) -> BuildOptions:
    names = args.arch or list(ctx.config.arches)
    arches = tuple(dict.fromkeys(get_arch(n) for n in names))
    return BuildOptions(arches, not args.no_base, not args.no_bisect, not args.no_sparse)


def build_main(ctx: Context, args: argparse.Namespace) -> int:
    """kseries build: apply the series, run the build stage, write report.json."""
    from kseries.stages.basic import Run, apply_stage, run_stage, tree_stage

    options = options_from_args(ctx, args)
    for arch in options.arches:
        check_toolchain(arch)
    if options.sparse and any(a.name == SPARSE_ARCH for a in options.arches):
        require_program("sparse")
    report = Report(ctx.config.name, ctx.revision_name, str(ctx.options.tree or "default"))
    run = Run(ctx)
    for name, fn in (("tree", tree_stage), ("apply", apply_stage)):
        stage = report.add(run_stage(name, fn, run))
        if stage.status == "fail":
            return finish(report, ctx)
    assert run.tree is not None and run.applied is not None
    tree, applied = run.tree, run.applied
    report.add(run_stage("build", lambda _run: run_build(ctx, tree, applied, options), run))
    return finish(report, ctx)


def finish(report: Report, ctx: Context) -> int:
    path = report.write(ctx.out)
    for stage in report.stages:
        for check in stage.checks:
            if check.status == "pass":
                continue
            print(f"{check.status.upper():5} {check.name}: {check.summary}")
            for line in check.data.get("errors", []) or check.data.get("new_warnings", []):
                print(f"      {line}")
            if check.reproducer:
                print(f"      reproduce: {check.reproducer}")
    for line in report.summary_lines():
        print(line)
    print(f"report: {path}")
    return {"pass": 0, "skip": 0, "warn": EXIT_WARN}.get(report.status, 1)
