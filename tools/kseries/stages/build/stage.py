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
from collections.abc import Sequence

from kseries.core.context import Context
from kseries.core.pipeline import RunState, StageDef
from kseries.core.report import Stage
from kseries.kernel.arches import ARCHES, Arch, check_toolchain, get_arch
from kseries.stages.build.merge import merge_arch_stages, split_by_arch
from kseries.stages.build.options import SPARSE_ARCH, BuildOptions
from kseries.stages.build.run import run_build


def build_stage(state: RunState, options: BuildOptions) -> Stage:
    """The build stage: every selected arch, the base, each patch, sparse."""
    assert state.tree is not None and state.applied is not None  # needs apply
    for arch in options.arches:
        check_toolchain(arch)
    return run_build(state.ctx, state.tree, state.applied, options)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", action="append", metavar="ARCH",
                        help=f"build for ARCH (repeatable; one of {', '.join(ARCHES)}; "
                             "default: the arches of series.toml)")
    parser.add_argument("--no-base", action="store_true",
                        help="do not build the base (no new-warning comparison)")
    parser.add_argument("--no-bisect", action="store_true",
                        help="build only the head, not every patch")
    parser.add_argument("--no-sparse", action="store_true", help="skip sparse on x86_64")


def options_from_args(args: argparse.Namespace, ctx: Context) -> BuildOptions:
    return BuildOptions(selected_arches(args.arch, ctx), not args.no_base, not args.no_bisect,
                        not args.no_sparse)


def selected_arches(names: Sequence[str] | None, ctx: Context) -> tuple[Arch, ...]:
    return tuple(dict.fromkeys(get_arch(n) for n in names or ctx.config.arches))


def verify_options(ctx: Context, arches: tuple[str, ...] | None) -> BuildOptions:
    return BuildOptions(selected_arches(arches, ctx))


def options_to_args(options: BuildOptions) -> list[str]:
    args = [f"--arch={a.name}" for a in options.arches]
    flags = (("--no-base", options.base), ("--no-bisect", options.bisect),
             ("--no-sparse", options.sparse))
    return args + [flag for flag, wanted in flags if not wanted]


def tools_for(options: BuildOptions) -> tuple[str, ...]:
    compilers = [tool for a in options.arches for tool in (a.cc, a.ld)]
    sparse = ["sparse"] if options.sparse and any(a.name == SPARSE_ARCH
                                                  for a in options.arches) else []
    return ("make", "ccache", "git", *compilers, *sparse)


def render(stage: Stage) -> list[str]:
    """What `kseries build` prints: every check that did not pass, its lines, how to redo it."""
    lines = []
    for check in stage.checks:
        if check.status == "pass":
            continue
        lines.append(f"{check.status.upper():5} {check.name}: {check.summary}")
        lines += [f"      {line}" for line in
                  check.data.get("errors", []) or check.data.get("new_warnings", [])]
        if check.reproducer:
            lines.append(f"      reproduce: {check.reproducer}")
    return lines


STAGE: StageDef[BuildOptions] = StageDef(
    name="build", help="build touched and calling files per arch: new warnings, bisect",
    run=build_stage, from_args=options_from_args, for_verify=verify_options,
    to_args=options_to_args, configure=configure_parser, needs=lambda _o: ("apply",),
    tools=tools_for, render=render, split=split_by_arch, merge=merge_arch_stages)
