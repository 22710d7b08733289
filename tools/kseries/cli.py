"""The kseries command line: the CLI edge where argparse becomes typed options.

Exit codes (NIPA style): 0 pass (or only reasoned skips), 250 warnings only, 1 failure or bad
input, 2 bad usage, 3 infrastructure error (a missing or hung tool, a bug), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from kseries.core.context import Context, Options, make_context, progress, setup_logging
from kseries.core.errors import InfraError, KseriesError
from kseries.core.events import record_events
from kseries.core.lock import cache_lock
from kseries.core.pipeline import Outcome, Planned, Runner, StageDef, plan, reproducer
from kseries.core.report import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    exit_code,
    kseries_version,
    worst,
)
from kseries.doctor import doctor_main, missing_tools
from kseries.export.command import (
    add_format_options,
    add_report_command,
    check_formats,
    export_after_run,
)
from kseries.jobs import command as jobs
from kseries.kernel.tree import open_default_tree
from kseries.series import upkeep
from kseries.series.apply import apply_series
from kseries.stages.registry import BY_NAME, NO_SUBCOMMAND, STAGES

Handler = Callable[[Context, argparse.Namespace], int]
EPILOG = ("exit codes: 0 pass, 250 warnings only, 1 failure or bad input, 2 usage, "
          "3 infrastructure error, 130 interrupted")


def add_tree_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tree", type=Path, metavar="PATH",
                        help="your git checkout of Linux (default: the cached Debian tree)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="cache for trees and builds (default: $KSERIES_CACHE_DIR or "
                             "$XDG_CACHE_HOME/kseries)")
    parser.add_argument("--series", type=Path, metavar="FILE",
                        help="series description (default: patches/series.toml)")


def add_base_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-version", metavar="VERSION",
                        help="another Debian version of the source package")


def add_series_input(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--revision", metavar="vN", help="series revision (default: current)")
    which.add_argument("--mbox", type=Path, metavar="FILE|DIR|-",
                       help="a thread to apply instead: an mbox (as saved from a mail client "
                            "or by b4), a Maildir, a folder of .eml/.patch files, or - for stdin")
    parser.add_argument("--thread-revision", type=int, metavar="N",
                        help="with several revisions in the thread, apply vN (default: the "
                             "newest)")


def add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out"), metavar="DIR",
                        help="report and logs (default: out/); a report there about the same "
                             "series, revision and tree is added to, stage by stage")


def add_run_inputs(parser: argparse.ArgumentParser) -> None:
    """What a run reads and where it writes (verify, each stage, plan)."""
    add_tree_options(parser)
    add_base_version(parser)
    add_series_input(parser)
    add_out(parser)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """What every command that runs stages takes."""
    add_run_inputs(parser)
    add_json(parser)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", dest="as_json",
                        help="print the result as JSON on stdout (for scripts and CI); what "
                             "a person reads goes to stderr")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    configure: Callable[[argparse.ArgumentParser], None]
    locked: bool = True
    # Checks the command line before the cache lock is taken: a bad argument is an error
    # at once, not after waiting for another run to finish.
    check: Callable[[Context, argparse.Namespace], object] | None = None


def configure_tree(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", action="store_true",
                        help="only show path, version and base commit (no download)")
    add_tree_options(parser)
    add_json(parser)
    add_base_version(parser)


def configure_apply(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onto", metavar="REV", help="apply on REV instead of the base-commit")
    add_tree_options(parser)
    add_base_version(parser)
    add_series_input(parser)


def configure_verify(parser: argparse.ArgumentParser) -> None:
    add_stage_selection(parser)
    add_run_options(parser)
    add_format_options(parser, required=False)  # written to <out>/export at the end


def add_stage_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", nargs="+", action="extend", choices=list(BY_NAME),
                        metavar="NAME", help="run only these stages (and what they need): "
                        f"{', '.join(BY_NAME)}")
    parser.add_argument("--arch", nargs="+", action="extend", metavar="ARCH",
                        help="only these arches (a per-arch bot); default: series.toml's")


def with_upkeep(configure: Callable[[argparse.ArgumentParser], None]
                ) -> Callable[[argparse.ArgumentParser], None]:
    def both(parser: argparse.ArgumentParser) -> None:
        configure(parser)
        add_tree_options(parser)
    return both


def stage_command(stage: StageDef[Any]) -> Command:
    def configure(parser: argparse.ArgumentParser) -> None:
        stage.configure(parser)
        add_run_options(parser)

    def handler(ctx: Context, args: argparse.Namespace) -> int:
        return run_stage_command(ctx, stage, stage.from_args(args, ctx), args.as_json)

    return Command(stage.name, stage.help, handler, configure,
                   check=lambda ctx, args: stage.from_args(args, ctx))


def commands() -> list[Command]:
    by_stage = [stage_command(s) for s in STAGES if s.name not in NO_SUBCOMMAND]
    return [
        Command("tree", "fetch and import the default tree; show a tree", cmd_tree,
                configure_tree),
        Command("apply", "apply the series in a scratch worktree with b4", cmd_apply,
                configure_apply),
        Command("verify", "run every stage (or --stage NAME...) and write report.json",
                cmd_verify, configure_verify),
        *by_stage,
        Command("export", "write a branch as patches/vN.mbx and record it in series.toml",
                upkeep.export_main, with_upkeep(upkeep.configure_export)),
        Command("import", "apply revision vN to an editable branch and worktree",
                upkeep.import_main, with_upkeep(upkeep.configure_import)),
        Command("trailers", "collect review trailers from a thread onto an edit branch "
                "(b4 trailers -u, offline)", upkeep.trailers_main,
                with_upkeep(upkeep.configure_trailers)),
        Command("diff", "compare two revisions patch by patch (git range-diff)",
                upkeep.diff_main, with_upkeep(upkeep.configure_diff)),
        Command("doctor", "check every tool the stages need; the package for each missing one",
                doctor_main, configure_doctor, locked=False),
        Command("plan", "cut verify into jobs any CI matrix can run (<out>/jobs.json)",
                jobs.plan_main, both(jobs.configure_plan, add_stage_selection, add_run_inputs)),
        # the job's own kseries command takes the cache lock, not this one
        Command("job", "run one job of a plan into --out (after the jobs it needs: --from)",
                jobs.job_main, both(jobs.configure_job, add_tree_options, add_out),
                locked=False),
    ]


def both(*configures: Callable[[argparse.ArgumentParser], None]
         ) -> Callable[[argparse.ArgumentParser], None]:
    def configure(parser: argparse.ArgumentParser) -> None:
        for one in configures:
            one(parser)
    return configure


def configure_doctor(parser: argparse.ArgumentParser) -> None:
    add_stage_selection(parser)
    add_tree_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kseries",
        description="Verify a Linux kernel patch series: apply with b4, build, check callers, "
                    "run tests.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"kseries {kseries_version()}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbosity",
                      default=0, help="no progress lines, only results and errors")
    loud.add_argument("-v", "--verbose", action="store_const", const=1, dest="verbosity",
                      help="debug lines too")
    parser.add_argument("--events", type=Path, metavar="FILE",
                        help="also write what the run does as JSON lines to FILE (appended): "
                             "start and end of every stage and command, durations, cache hits")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands():
        child = subparsers.add_parser(command.name, help=command.help,
                                      description=command.help, epilog=EPILOG)
        command.configure(child)
        child.set_defaults(handler=command.handler, locked=command.locked,
                           check=command.check)
    add_report_command(subparsers, EPILOG)  # a plain command: no tree, series or lock
    jobs.add_merge_command(subparsers, EPILOG)  # plain too
    return parser


def options_from(args: argparse.Namespace) -> Options:
    return Options(series_file=args.series, cache_dir=args.cache_dir, tree=args.tree,
                   revision=getattr(args, "revision", None), mbox=getattr(args, "mbox", None),
                   out=getattr(args, "out", Path("out")),
                   base_version=getattr(args, "base_version", None),
                   thread_revision=getattr(args, "thread_revision", None))


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
    if args.as_json:
        print(json.dumps({"path": str(tree.path), "version": tree.version,
                          "base_commit": tree.base_commit}, indent=2))
        return 0
    print(f"path:        {tree.path}")
    print(f"version:     {tree.version}")
    print(f"base commit: {tree.base_commit}")
    return 0


def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    tree = ctx.tree()
    progress(f"apply: {ctx.mbox_path()} onto {tree.path} with b4")
    result = apply_series(tree, ctx.mbox_path(), ctx.cache, ctx.config.name, ctx.revision_name,
                          args.onto, ctx.options.thread_revision)
    assert result.series is not None  # apply_series always says what it applied
    series = result.series
    for note in result.notes:
        print(f"note: {note}")
    state = "already applied" if result.already_applied else "applied"
    print(f"{state}: {len(result.patches)} patches on {result.base}")
    print(f"worktree:    {result.worktree}")
    print(f"branch:      {result.branch}")
    for patch in result.patches:
        print(f"  {patch.index}/{len(series.patches)} {patch.commit[:12]} {patch.subject}")
    return 0


def verify_plan(ctx: Context, names: Sequence[str] | None,
                arches: Sequence[str] | None) -> list[Planned[Any]]:
    """The stages verify runs (all, or NAMES and what they need), with verify's options."""
    only = tuple(arches) if arches else None

    def planned(stage: StageDef[Any]) -> Planned[Any]:
        return Planned(stage, stage.for_verify(ctx, only))

    wanted = [planned(BY_NAME[n]) for n in names] if names else [planned(s) for s in STAGES]
    return plan(wanted, STAGES, planned)


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    check_formats(args.formats, args.origin)  # a bad --format fails before the run
    planned = verify_plan(ctx, args.stage, args.arch)
    stage_args = ([f"--stage={n}" for n in args.stage or ()] +
                  [f"--arch={a}" for a in args.arch or ()])
    outcome = Runner(ctx, "verify", progress).run(planned)
    progress(f"reproduce: {reproducer('verify', ctx, stage_args)}")
    human = sys.stderr if args.as_json else sys.stdout
    code = finish(ctx, outcome, planned, render=False, human=human)
    with contextlib.redirect_stdout(human):  # what export says is for people too
        exported = export_after_run(ctx.out, args)
    if args.as_json:
        print(json.dumps(outcome.report.to_json(), indent=2))
    return exported or code


def run_stage_command(ctx: Context, stage: StageDef[Any], options: Any,
                      as_json: bool = False) -> int:
    """`kseries STAGE`: the stage with the stages it needs, each with verify's options; with
    AS_JSON the report goes to stdout as JSON and the human lines to stderr."""
    missing = missing_tools(stage.tools(options))
    if missing:
        raise InfraError(missing[0])
    planned = plan([Planned(stage, options)], STAGES,
                   lambda need: Planned(need, need.for_verify(ctx, None)))
    outcome = Runner(ctx, stage.name, progress).run(planned)
    code = finish(ctx, outcome, planned, render=True,
                  human=sys.stderr if as_json else sys.stdout)
    if as_json:
        print(json.dumps(outcome.report.to_json(), indent=2))
    return code


def finish(ctx: Context, outcome: Outcome, planned: Sequence[Planned[Any]],
           render: bool, human: TextIO | None = None) -> int:
    """Print what this run did (to HUMAN, default stdout) and return its exit code (only
    this run's stages count)."""
    human = human or sys.stdout  # looked up now: tests and callers replace sys.stdout
    names = [p.stage.name for p in planned]
    report = outcome.report
    for name, summary in outcome.raised:
        print(f"kseries: error: {name}: {summary}", file=sys.stderr)
    if render:
        for item in planned:
            stage = report.stage(item.stage.name)
            if stage is not None and item.stage.render is not None:
                for line in item.stage.render(stage):
                    print(line, file=human)
    for line in report.summary_lines(names):
        print(line, file=human)
    print(f"report: {ctx.out / 'report.json'}", file=human)
    ran = [s.status for s in report.stages if s.name in names]
    return exit_code(worst(ran))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbosity)
    if getattr(args, "plain", None) is not None:
        plain: Callable[[argparse.Namespace], int] = args.plain
        return plain(args)
    if args.events is not None:
        try:
            record_events(args.events)
        except OSError as err:
            print(f"kseries: error: cannot write events to {args.events}: {err.strerror}; "
                  f"give --events a writable file", file=sys.stderr)
            return EXIT_ERROR
    handler: Handler = args.handler
    try:
        # What the compiles get from the user's environment is read here, once.
        ctx = make_context(options_from(args), os.environ)
        if args.check is not None:
            args.check(ctx, args)
        if not args.locked or (args.command == "tree" and args.show):
            return handler(ctx, args)
        with cache_lock(ctx.cache, f"kseries {args.command}", progress):
            return handler(ctx, args)
    except InfraError as err:
        print(f"kseries: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KseriesError as err:
        print(f"kseries: error: {err}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("kseries: interrupted; finished stages are in the report, and your tree is as "
              "it was (work happens in a scratch worktree)", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
