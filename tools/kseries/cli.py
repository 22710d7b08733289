"""The kseries command line: argparse subcommands, one-line errors, exit codes.

Exit codes (NIPA style): 0 pass, 250 warnings only, 1 failure, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.core.context import Context, Options, make_context, progress
from kseries.core.errors import KseriesError
from kseries.core.lock import cache_lock
from kseries.kernel.tree import open_default_tree
from kseries.series import upkeep
from kseries.series.apply import apply_series
from kseries.stages.basic import verify
from kseries.stages.build import stage as build
from kseries.stages.callers import stage as callers_stage
from kseries.stages.kunit import stage as kunit
from kseries.stages.vmtest import stage as vmtest

EXIT_WARN = 250
Command = Callable[[Context, argparse.Namespace], int]


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tree", type=Path, metavar="PATH",
                        help="your git checkout of Linux (default: the cached Debian tree)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--revision", metavar="vN", help="series revision (default: current)")
    which.add_argument("--mbox", type=Path, metavar="FILE", help="a series mbox to use instead")
    parser.add_argument("--out", type=Path, default=Path("out"), metavar="DIR",
                        help="report and logs (default: out/)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="cache for trees and builds (default: $KSERIES_CACHE_DIR or "
                             "$XDG_CACHE_HOME/kseries)")
    parser.add_argument("--series", type=Path, metavar="FILE",
                        help="series description (default: patches/series.toml)")


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    handler: Command
    configure: Callable[[argparse.ArgumentParser], None] | None = None


def configure_tree(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", action="store_true",
                        help="only show path, version and base commit (no download)")
    parser.add_argument("--base-version", metavar="VERSION",
                        help="another Debian version of the source package")


def configure_apply(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onto", metavar="REV", help="apply on REV instead of the base-commit")


def subcommands() -> list[Subcommand]:
    return [
        Subcommand("tree", "fetch and import the default tree; show a tree", cmd_tree,
                   configure_tree),
        Subcommand("apply", "apply the series in a scratch worktree with b4", cmd_apply,
                   configure_apply),
        Subcommand("verify", "run every stage and write report.json", cmd_verify),
        Subcommand("build", "build touched and calling files per arch: new warnings, bisect",
                   build.build_main, build.configure_parser),
        Subcommand("callers", "check that every caller of the changed API was converted",
                   callers_stage.callers_main, callers_stage.configure_parser),
        Subcommand("kunit", "run the MHP_DRIVER_MANAGED KUnit suite (kunit.py, QEMU); "
                   "--against-base proves it bites", kunit.kunit_main, kunit.configure_parser),
        Subcommand("vmtest", "boot with virtio-mem and check the kexec contract (kexec-tools)",
                   vmtest.vmtest_main, vmtest.configure_parser),
        Subcommand("export", "write a branch as patches/vN.mbx and record it in series.toml",
                   upkeep.export_main, upkeep.configure_export),
        Subcommand("import", "apply revision vN to an editable branch and worktree",
                   upkeep.import_main, upkeep.configure_import),
        Subcommand("diff", "compare two revisions patch by patch (git range-diff)",
                   upkeep.diff_main, upkeep.configure_diff),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kseries",
        description="Verify a Linux kernel patch series: apply with b4, build, check callers, "
                    "run tests.",
        epilog="exit codes: 0 pass, 250 warnings only, 1 failure, 2 usage, 130 interrupted")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for sub in subcommands():
        child = commands.add_parser(sub.name, help=sub.help, description=sub.help)
        if sub.configure is not None:
            sub.configure(child)
        add_common(child)
        child.set_defaults(handler=sub.handler)
    return parser


def options_from(args: argparse.Namespace) -> Options:
    return Options(series_file=args.series, cache_dir=args.cache_dir, tree=args.tree,
                   revision=args.revision, mbox=args.mbox, out=args.out,
                   base_version=getattr(args, "base_version", None))


def cmd_tree(ctx: Context, args: argparse.Namespace) -> int:
    if args.show and ctx.options.tree is None:
        found = open_default_tree(ctx.cache, ctx.config.base)
        if found is None:
            raise KseriesError(f"the default tree ({ctx.config.base.package} "
                               f"{ctx.config.base.version}) is not imported yet; run "
                               "'kseries tree'")
        tree = found
    else:
        tree = ctx.tree()
    print(f"path:        {tree.path}")
    print(f"version:     {tree.version}")
    print(f"base commit: {tree.base_commit}")
    return 0


def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    tree = ctx.tree()
    series = ctx.series()
    progress(f"apply: {len(series.patches)} patches from {series.path} onto {tree.path}")
    result = apply_series(tree, series, ctx.cache, ctx.config.name, ctx.revision_name, args.onto)
    for note in result.notes:
        print(f"note: {note}")
    state = "already applied" if result.already_applied else "applied"
    print(f"{state}: {len(result.patches)} patches on {result.base}")
    print(f"worktree:    {result.worktree}")
    print(f"branch:      {result.branch}")
    for patch in result.patches:
        print(f"  {patch.index}/{len(series.patches)} {patch.commit[:12]} {patch.subject}")
    return 0


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    report = verify(ctx)
    path = report.write(ctx.out)
    for line in report.summary_lines():
        print(line)
    print(f"report: {path}")
    return {"pass": 0, "skip": 0, "warn": EXIT_WARN}.get(report.status, 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        ctx = make_context(options_from(args))
        if args.command == "tree" and args.show:
            return handler(ctx, args)
        with cache_lock(ctx.cache, f"kseries {args.command}", progress):
            return handler(ctx, args)
    except KseriesError as err:
        print(f"kseries: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kseries: interrupted; your tree is as it was (work happens in a scratch "
              "worktree)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
