"""The stage contract and the one runner every kseries command goes through.

A stage says what it is called, which stages it needs, its own typed options (built from
argparse at the CLI edge: stage code never sees a Namespace), what `verify` runs, how it
runs, which tools it needs and how to reproduce it. The runner orders the stages, turns an
unmet need into a reasoned skip, turns every exception into that stage's result (fail for
a KseriesError, error for an infrastructure fault or a bug, with the traceback in the
stage's log), and writes report.json atomically after every stage and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import shlex
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from kseries.core import events
from kseries.core.context import Context
from kseries.core.errors import InfraError, KseriesError
from kseries.core.report import Report, Stage, load_report, stopwatch, utc_now
from kseries.core.tools import tool_versions
from kseries.kernel.tree import Tree
from kseries.series.apply import ApplyResult

OptionsT = TypeVar("OptionsT")
Progress = Callable[[str], None]


@dataclass
class RunState:
    """What the stages of one run share: the tree, the applied series, finished stages."""

    ctx: Context
    tree: Tree | None = None
    applied: ApplyResult | None = None
    done: dict[str, Stage] = field(default_factory=dict)
    # Stages of the report already in --out for the same series, revision and tree (a
    # standalone `kseries callers` after `kseries build` reads the build's coverage).
    earlier: dict[str, Stage] = field(default_factory=dict)

    def latest(self, name: str) -> Stage | None:
        """NAME's result from this run, else from the earlier report in --out."""
        return self.done.get(name) or self.earlier.get(name)

    def log_dir(self) -> Path:
        path = self.ctx.out / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path


def no_options(_parser: argparse.ArgumentParser) -> None:
    """For stages without options of their own."""


@dataclass(frozen=True)
class StageDef(Generic[OptionsT]):
    """One stage of the pipeline (see the module docstring for the contract)."""

    name: str
    help: str
    run: Callable[[RunState, OptionsT], Stage]
    # The options as the stage's own subcommand parsed them, and as `verify` runs it
    # (ARCHES: `verify --arch`, None for the arches of series.toml).
    from_args: Callable[[argparse.Namespace, Context], OptionsT]
    for_verify: Callable[[Context, tuple[str, ...] | None], OptionsT]
    # The stage's own flags, such that from_args(parse(to_args(o))) == o.
    to_args: Callable[[OptionsT], list[str]]
    configure: Callable[[argparse.ArgumentParser], None] = no_options
    needs: Callable[[OptionsT], tuple[str, ...]] = lambda _o: ()
    tools: Callable[[OptionsT], tuple[str, ...]] = lambda _o: ()
    render: Callable[[Stage], list[str]] | None = None
    # A reproducer other than `kseries <name> <common options> <to_args>` (e.g. revisions).
    reproduce: Callable[[Context, OptionsT], str] | None = None
    # For `kseries plan`: the options cut into one job per arch (what verify runs, arch by
    # arch), and how the per-arch results become the one stage verify would have written.
    # None: the stage is one job.
    split: Callable[[OptionsT], tuple[tuple[str, OptionsT], ...]] | None = None
    merge: Callable[[Sequence[Stage]], Stage] | None = None

    def reproducer(self, ctx: Context, options: OptionsT) -> str:
        if self.reproduce is not None:
            return self.reproduce(ctx, options)
        return reproducer(self.name, ctx, self.to_args(options))


@dataclass(frozen=True)
class Planned(Generic[OptionsT]):
    stage: StageDef[OptionsT]
    options: OptionsT


def plan(wanted: Sequence[Planned[Any]], registry: Sequence[StageDef[Any]],
         defaults: Callable[[StageDef[Any]], Planned[Any]]) -> list[Planned[Any]]:
    """WANTED plus every stage they need (with DEFAULTS options), in registry order."""
    chosen: dict[str, Planned[Any]] = {p.stage.name: p for p in wanted}
    by_name = {s.name: s for s in registry}
    pending = list(wanted)
    while pending:
        item = pending.pop()
        for need in item.stage.needs(item.options):
            if need not in chosen:
                chosen[need] = defaults(by_name[need])
                pending.append(chosen[need])
    order = [s.name for s in registry]
    return sorted(chosen.values(), key=lambda p: order.index(p.stage.name))


def reproducer(command: str, ctx: Context, stage_args: Sequence[str]) -> str:
    """The command line that redoes COMMAND on the same input: tree, series, revision/mbox."""
    return shlex.join(["kseries", command, *input_args(ctx), *stage_args])


def input_args(ctx: Context) -> list[str]:
    """The common options that name what a command works on: tree, series, revision or
    mbox (and its thread revision), base version."""
    opts = ctx.options
    args: list[str] = []
    if opts.tree is not None:
        args += ["--tree", str(opts.tree)]
    if opts.series_file is not None:
        args += ["--series", str(opts.series_file)]
    if opts.mbox is not None:
        args += ["--mbox", str(opts.mbox)]
        if opts.thread_revision is not None:
            args += ["--thread-revision", str(opts.thread_revision)]
    elif opts.revision is not None:
        args += ["--revision", opts.revision]
    if opts.base_version is not None:
        args += ["--base-version", opts.base_version]
    return args


@dataclass(frozen=True)
class Outcome:
    report: Report
    # Stages that ended with an exception (bad input, a missing tool, a bug): the CLI
    # prints them as one-line errors, as every kseries command does for bad input.
    raised: tuple[tuple[str, str], ...] = ()


def open_report(ctx: Context, progress: Progress) -> Report:
    """The report to add to: the one in --out when it is about the same subject, else new."""
    fresh = Report(ctx.config.name, ctx.revision_name, str(ctx.options.tree or "default"))
    found = load_report(ctx.out)
    if found is None:
        return fresh
    if not found.same_subject(fresh):
        progress(f"report: {ctx.out / 'report.json'} is about {found.series} {found.revision} "
                 f"on {found.tree}; starting a new one")
        return fresh
    found.ended = None
    return found


class Runner:
    """Runs planned stages in order and keeps <out>/report.json current."""

    def __init__(self, ctx: Context, command: str, progress: Progress) -> None:
        self.ctx = ctx
        self.command = command
        self.progress = progress
        self.report = open_report(ctx, progress)
        self.state = RunState(ctx, earlier={s.name: s for s in self.report.stages})
        self.raised: list[tuple[str, str]] = []

    def run(self, planned: Sequence[Planned[Any]]) -> Outcome:
        tools = sorted({t for p in planned for t in p.stage.tools(p.options)})
        self.report.tools.update(tool_versions(tools))
        try:
            for item in planned:
                self._finish(self._run_one(item))
        except KeyboardInterrupt:
            self.report.interrupted = True
            raise
        finally:
            self.report.ended = utc_now()
            self.report.write(self.ctx.out)
        return Outcome(self.report, tuple(self.raised))

    def _finish(self, stage: Stage) -> None:
        self.state.done[stage.name] = stage
        self.report.add(stage)
        self.report.write(self.ctx.out)
        self.progress(f"stage {stage.name}: {stage.status} - {stage.summary}")

    def _run_one(self, item: Planned[Any]) -> Stage:
        with events.span("stage", stage=item.stage.name) as done:
            stage = self._run_stage(item)
            done.update(status=stage.status, summary=stage.summary)
        return stage

    def _run_stage(self, item: Planned[Any]) -> Stage:
        name = item.stage.name
        unmet = self._unmet(item)
        if unmet:
            return Stage(name=name, status="skip", summary=unmet, duration_s=0.0)
        self.progress(f"stage {name}: starting")
        with stopwatch() as took:
            try:
                done = item.stage.run(self.state, item.options)
                return replace(done, reproducer=item.stage.reproducer(self.ctx, item.options))
            except InfraError as err:
                failed = Stage(name=name, status="error", summary=str(err), duration_s=0.0)
            except KseriesError as err:
                failed = Stage(name=name, status="fail", summary=str(err), duration_s=0.0)
            except Exception as err:
                log = self._traceback_log(name)
                failed = Stage(name=name, status="error",
                               summary=f"internal error: {type(err).__name__}: {err} "
                               f"(traceback: {log})", duration_s=0.0, log=str(log))
        self.raised.append((name, failed.summary))
        return replace(failed, duration_s=took[0])

    def _unmet(self, item: Planned[Any]) -> str:
        for need in item.stage.needs(item.options):
            done = self.state.done.get(need)
            if done is None:
                return f"needs the {need} stage, which did not run"
            if done.status in ("fail", "error", "skip"):
                return f"needs the {need} stage, which ended {done.status}: {done.summary}"
        return ""

    def _traceback_log(self, name: str) -> Path:
        path = self.state.log_dir() / f"{name}-error.log"
        path.write_text(traceback.format_exc())
        return path


@dataclass(frozen=True)
class NoOptions:
    """The options of a stage that has none."""


def no_options_from(_args: object, _ctx: object) -> NoOptions:
    return NoOptions()


def no_options_for_verify(_ctx: object, _arches: object) -> NoOptions:
    return NoOptions()


def no_args(_options: object) -> list[str]:
    return []
