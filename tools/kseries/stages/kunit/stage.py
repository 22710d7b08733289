"""kseries kunit: the MHP_DRIVER_MANAGED KUnit suite on QEMU, with the series and without it.

The suite (the series' own KUnit patch when it has one, else kernel-overlay/; see suite.py)
is laid onto the scratch worktree and run with the tree's own tools/testing/kunit/kunit.py:
`build`, then `exec --json`, with the kunitconfig from Kconfig.fragments/ and one build dir
per arch under <cache>/build/kunit-<arch> (reused by every run; base and series share it,
ccache makes the rebuild after switching cheap). Per-arch facts (kunit.py's --arch, QEMU, compilers,
timeouts) come from the arch registry, kernel/arches.toml. A guest uses KVM where the host
is of its arch and a short probe boots (kernel/kvm.py), else TCG with a longer timeout; a
hung guest ends at kunit.py's timeout.

--against-base also runs the suite on the base without the series, with a shim header
(kernel-overlay/mm/memory_hotplug_kunit_base.h) that gives MHP_DRIVER_MANAGED the bit the
series gives it, which the base ignores: the cases about what the series changes must
fail there (or the suite not build), which proves that it tests them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kseries.core import durations
from kseries.core.context import Context, progress
from kseries.core.errors import KseriesError
from kseries.core.paths import FRAGMENTS_DIR
from kseries.core.pipeline import RunState, StageDef
from kseries.core.pipeline import reproducer as command_reproducer
from kseries.core.proc import ToolTimeout, command_line, run
from kseries.core.report import Stage, stopwatch, worst
from kseries.kernel import kvm
from kseries.kernel.arch_change import not_built_for
from kseries.kernel.arches import ARCHES, Arch, get_arch, jobs, require_arch_program
from kseries.kernel.tree import Tree
from kseries.series import apply as ap
from kseries.stages.kunit.overlay import format_patch, load_overlay
from kseries.stages.kunit.results import (
    CaseResult,
    case_names,
    console_cases,
    merge,
    missing_cases,
    parse_json,
    suite_name,
)
from kseries.stages.kunit.suite import Suite, find_suite, lay_suite, suite_text
from kseries.stages.kunit.verdicts import (
    REQUIRED_ARCH,
    KunitRun,
    Outcome,
    Variant,
    progression_check,
    run_checks,
    stage_summary,
)

ALL_ARCHES = tuple(ARCHES)
# verify proves that the suite bites on the required arch only (one more build).
VERIFY_BASE_ARCHES = (REQUIRED_ARCH,)
KUNIT_PY = "tools/testing/kunit/kunit.py"
BUILD_TIMEOUT_S = 3 * 3600
KVM_TIMEOUT_S = 180  # TCG: the arch's kunit.tcg_timeout_s in kernel/arches.toml
PROBE_TIMEOUT_S = 30
PROBE_FILTER = "kseries_kvm_probe_runs_no_suite"
EXTRA_PATCH_NAME = "0001-mm-memory_hotplug-Add-KUnit-tests-for-MHP_DRIVER_MAN.patch"
TIMED_OUT_RE = re.compile(r"timed out after \d+ seconds")
ERROR_RE = re.compile(r"(\berror:|\*\*\* |^Missing: )")
LOGGED_ERROR = "ERROR:root:"  # kunit.py logs a failed step's first line with this prefix
MAX_ERRORS = 8

@dataclass(frozen=True)
class Ran:
    returncode: int | None  # None: killed after the timeout
    output: str


# --- command line -------------------------------------------------------------------------


@dataclass(frozen=True)
class KunitOptions:
    arches: tuple[str, ...] = (REQUIRED_ARCH,)
    # Where the suite also runs on the base without the series (it must fail there).
    base_arches: tuple[str, ...] = ()
    write_patch: bool = False
    # Also at every commit between base and head, on every arch (which patch fixes which case).
    every_commit: bool = False


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", action="append", choices=[*ALL_ARCHES, "all"],
                        metavar="ARCH", help="x86_64 (default), arm64, powerpc, s390 or all; "
                        "repeatable")
    parser.add_argument("--against-base", action="store_true",
                        help="also run the suite on the base without the series, on every "
                             "--arch; it must fail or not build there")
    parser.add_argument("--base-arch", action="append", choices=ALL_ARCHES, metavar="ARCH",
                        help="run on the base on ARCH only (repeatable; verify: x86_64)")
    parser.add_argument("--every-commit", action="store_true",
                        help="also run the suite at every patch of the series before the last, "
                             "on every --arch: which patch makes which case pass")
    parser.add_argument("--write-patch", action="store_true",
                        help="only (re)write patches/extra/0001-*.patch: the overlay as one "
                             "patch on top of the series, for upstream posting")


def selected_arches(values: Sequence[str] | None) -> tuple[str, ...]:
    """--arch values in order, `all` expanded, duplicates dropped; default x86_64."""
    wanted: list[str] = []
    for value in values or [REQUIRED_ARCH]:
        for arch in ALL_ARCHES if value == "all" else (value,):
            if arch not in ALL_ARCHES:
                raise KseriesError(f"unknown arch '{arch}'; use one of "
                                   f"{', '.join(ALL_ARCHES)} or all")
            if arch not in wanted:
                wanted.append(arch)
    return tuple(wanted)


def options_from_args(args: argparse.Namespace, _ctx: Context) -> KunitOptions:
    arches = selected_arches(args.arch)
    base = arches if args.against_base else selected_arches(args.base_arch) \
        if args.base_arch else ()
    return KunitOptions(arches, base, bool(args.write_patch), bool(args.every_commit))


def verify_options(ctx: Context, only: tuple[str, ...] | None) -> KunitOptions:
    """The series on every configured arch, the base on x86_64 (one more build)."""
    arches = selected_arches([REQUIRED_ARCH, *ctx.config.arches])
    if only is not None:
        arches = tuple(a for a in arches if a in only)
    return KunitOptions(arches, tuple(a for a in VERIFY_BASE_ARCHES if a in arches))


def options_to_args(options: KunitOptions) -> list[str]:
    args = [f"--arch={a}" for a in options.arches]
    if options.base_arches and options.base_arches == options.arches:
        args.append("--against-base")
    else:
        args += [f"--base-arch={a}" for a in options.base_arches]
    return (args + (["--write-patch"] if options.write_patch else [])
            + (["--every-commit"] if options.every_commit else []))


def kunit_stage(state: RunState, options: KunitOptions) -> Stage:
    assert state.tree is not None and state.applied is not None  # needs apply
    if options.write_patch:
        carried = find_suite(state.tree.path, state.applied.base, state.applied.head,
                             load_overlay())
        if carried.in_series:
            raise KseriesError(f"--write-patch: {carried.describe()}; there is no extra patch "
                               "to write for this revision")
        path = write_extra_patch(state.tree, state.applied.head)
        return Stage(name="kunit", status="skip",
                     summary=f"written: {path}; the suite did not run (--write-patch)",
                     duration_s=0.0, data={"written": str(path)})
    if not options.arches:
        return Stage(name="kunit", status="skip", summary="no arch selected", duration_s=0.0)
    return kunit_for(state.ctx, state.tree, state.applied, options)


def tools_for(options: KunitOptions) -> tuple[str, ...]:
    arches = [get_arch(a) for a in options.arches]
    return ("make", "ccache", *(a.qemu for a in arches), *(a.cc for a in arches))


def render(stage: Stage) -> list[str]:
    if "written" in stage.data:
        return [f"written: {stage.data['written']}"]
    return [f"{c.status.upper():5} {c.name}: {c.summary}" for c in stage.checks]


def extra_patch_path() -> Path:
    """patches/extra/0001-*.patch (the one there, or the name git format-patch gives it)."""
    extra = fragments_dir().parent / "patches" / "extra"
    found = sorted(extra.glob("0001-*.patch"))
    return found[0] if found else extra / EXTRA_PATCH_NAME


def write_extra_patch(tree: Tree, head: str) -> Path:
    """The overlay as one patch on HEAD (the series), with kernel-overlay/commit-message.txt."""
    overlay = load_overlay()
    message = (overlay.root / "commit-message.txt").read_text()
    path = extra_patch_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_patch(overlay, tree.path, head, message))
    return path


# --- the stage ----------------------------------------------------------------------------


def kunit_for(ctx: Context, tree: Tree, applied: ap.ApplyResult,
              options: KunitOptions) -> Stage:
    with stopwatch() as took:
        runs = run_variants(ctx, tree, applied, options)
    reproducer = command_reproducer("kunit", ctx, options_to_args(options))
    checks = [check for r in runs for check in run_checks(r, reproducer)]
    if options.every_commit:
        checks += [progression_check(arch, runs, reproducer) for arch in options.arches]
    return Stage(name="kunit", status=worst([c.status for c in checks]),
                 summary=stage_summary(runs, checks), duration_s=took[0],
                 checks=tuple(checks),
                 data={"worktree": str(applied.worktree), "base": applied.base,
                       "head": applied.head, "runs": [r.to_json() for r in runs]})


def run_variants(ctx: Context, tree: Tree, applied: ap.ApplyResult,
                 options: KunitOptions) -> list[KunitRun]:
    """Base runs first (worktree at the base), then every patch but the last if asked, then
    the series; the worktree ends at head."""
    if not (applied.worktree / ".git").exists():
        ap.ensure_worktree(tree, applied.worktree, applied.head)
    suite = find_suite(applied.worktree, applied.base, applied.head, load_overlay())
    progress(f"kunit: {suite.describe()}")
    if not (applied.worktree / KUNIT_PY).is_file():
        raise KseriesError(f"{applied.worktree} has no {KUNIT_PY}; kseries kunit needs a tree "
                           "with KUnit's kunit.py (Linux 5.5 or later)")
    runs: list[KunitRun] = []
    try:
        for variant, patch, commit, wanted in steps(applied, options):
            if variant == "commit":  # a commit for another arch: its kernel here is the last's
                same = {a: why for a in wanted
                        if (why := not_built_for(applied.worktree, commit, a)) is not None}
                runs += [KunitRun(a, variant, "same-as-before", why, patch=patch)
                         for a, why in same.items()]
                wanted = tuple(a for a in wanted if a not in same)
            if not wanted:
                continue
            ap.checkout(applied.worktree, commit)
            # Before the suite's own patch, the (guarded) shim defines the flag if need be.
            lay_suite(suite, applied.worktree, on_base=variant != "series")
            for arch in wanted:
                runs.append(run_arch(ctx, applied.worktree, suite, arch, variant, patch))
    finally:
        ap.checkout(applied.worktree, applied.head)
    return runs


def steps(applied: ap.ApplyResult,
          options: KunitOptions) -> list[tuple[Variant, int, str, tuple[str, ...]]]:
    """(variant, patch number, commit, arches) in the order they run."""
    middle: list[tuple[Variant, int, str, tuple[str, ...]]] = []
    if options.every_commit:
        middle = [("commit", p.index, p.commit, options.arches) for p in applied.patches[:-1]]
    return [("base", 0, applied.base, options.base_arches), *middle,
            ("series", len(applied.patches), applied.head, options.arches)]


# --- one run --------------------------------------------------------------------------------


def fragments_dir() -> Path:
    return FRAGMENTS_DIR


def kunitconfigs(arch: str) -> list[Path]:
    """The common kunitconfig and, where one exists, the arch's addition."""
    common = fragments_dir() / "kunit.kunitconfig"
    if not common.is_file():
        raise KseriesError(f"{common} is missing; it enables the KUnit suite")
    extra = fragments_dir() / f"kunit-{arch}.config"
    return [common, extra] if extra.is_file() else [common]


def build_dir(cache: Path, arch: str) -> Path:
    return cache / "build" / f"kunit-{arch}"


def compiler(spec: Arch) -> str:
    """CC for make: the (cross) gcc, through ccache when it is installed."""
    gcc = spec.cc
    return f"ccache {gcc}" if shutil.which("ccache") else gcc


def common_args(spec: Arch, build: Path) -> list[str]:
    args = [f"--arch={spec.kunit.arch}", f"--build_dir={build}"]
    args += [f"--kunitconfig={path}" for path in kunitconfigs(spec.name)]
    if spec.cross_compile:
        args.append(f"--cross_compile={spec.cross_compile}")
    args.append(f"--make_options=CC={compiler(spec)}")
    return args


def build_env(cache: Path, compile_env: Mapping[str, str]) -> dict[str, str]:
    """ccache sees paths below the cache dir as relative ones: worktree and build dir sit
    side by side there, so every cache dir on this machine shares the compiled objects (and
    so does every machine through a shared ccache: COMPILE_ENV, Context.compile_env)."""
    return {**compile_env, "CCACHE_BASEDIR": str(cache)}


def accel_args(spec: Arch, accel: str) -> list[str]:
    args = ["--qemu_args", f"-accel {accel}"]
    if spec.kunit.qemu_args:
        args += ["--qemu_args", " ".join(spec.kunit.qemu_args)]
    return args


def check_tools(spec: Arch) -> None:
    require_arch_program(spec.qemu)
    require_arch_program(spec.cc)


def run_arch(ctx: Context, worktree: Path, suite: Suite, arch: str,
             variant: Variant, patch: int = 0) -> KunitRun:
    run = run_arch_as(ctx, worktree, suite, arch, variant,
                      f"patch{patch}" if variant == "commit" else variant)
    return replace(run, patch=patch)


def run_arch_as(ctx: Context, worktree: Path, suite: Suite, arch: str,
                variant: Variant, tag: str) -> KunitRun:
    """One kunit.py build and run; TAG names the logs (base, series, patchN)."""
    spec = get_arch(arch)
    try:
        check_tools(spec)
    except KseriesError as err:
        return KunitRun(arch, variant, "unavailable", str(err))
    build = build_dir(ctx.cache, arch)
    build.mkdir(parents=True, exist_ok=True)
    logs = ctx.out / "kunit"  # absolute: make_context resolves --out
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{tag}-{arch}.log"
    log.write_text("")
    common = common_args(spec, build)
    tool = [sys.executable, KUNIT_PY]
    progress(f"kunit: {arch} ({tag}): building in {build}")
    with stopwatch() as took_build:
        built = run_logged([*tool, "build", *common, f"--jobs={jobs()}"], worktree, log,
                           BUILD_TIMEOUT_S, build_env(ctx.cache, ctx.compile_env),
                           durations.previous(ctx.cache, f"kunit build {arch}"))
    if built.returncode == 0:
        durations.remember(ctx.cache, f"kunit build {arch}", took_build[0])
    if built.returncode != 0:
        return build_failure(arch, variant, built, took_build[0], log,
                             tree_prefixes(worktree, build))

    accel, accel_note = choose_accel(ctx, worktree, spec, common, log)
    json_path = logs / f"{tag}-{arch}.json"
    progress(f"kunit: {arch} ({tag}): running the suite ({accel_note})")
    with stopwatch() as took_exec:
        ran = execute(worktree, spec, common, accel, json_path, log)
        if accel == "kvm" and (timed_out(ran) or not json_path.is_file()):
            kvm.remember_failure(ctx.cache, spec)
            accel, accel_note = "tcg", "TCG: the KVM guest hung or failed, so it ran again with TCG"
            ran = execute(worktree, spec, common, accel, json_path, log)
    console = logs / f"{tag}-{arch}.console.log"
    if (build / "test.log").is_file():
        shutil.copyfile(build / "test.log", console)
    command = command_line([*tool, "run", *common, f"--jobs={jobs()}",
                            f"--timeout={timeout_for(spec, accel)}",
                            *accel_args(spec, accel), "--json"], worktree)
    result = exec_result(arch, variant, ran, json_path, console, suite_text(worktree, suite),
                         accel_note, took_build[0], took_exec[0], log, command)
    return replace(result, cases=tuple(tree_relative(c, worktree, build) for c in result.cases))


def build_failure(arch: str, variant: Variant, built: Ran, took: float, log: Path,
                  prefixes: Sequence[str] = ()) -> KunitRun:
    errors = tuple(error_lines(built.output, prefixes))
    phase: Outcome = "build-failed" if "Building KUnit Kernel" in built.output else "config-failed"
    what = "does not build" if phase == "build-failed" else "kunit.py could not configure it"
    if built.returncode is None:
        what = f"build killed after {BUILD_TIMEOUT_S} s"
    first = errors[0] if errors else "see the log"
    return KunitRun(arch, variant, phase, f"{what}: {first}", errors=errors, build_s=took,
                    log=str(log))


def error_lines(output: str, prefixes: Sequence[str] = ()) -> list[str]:
    """Compiler, Kconfig and make error lines (compiler errors first), deduplicated, with
    file names relative to the tree (PREFIXES: how the tree's path appears in them)."""
    found: list[str] = []
    for line in output.splitlines():
        text = line.strip()
        for prefix in prefixes:
            text = text.replace(prefix, "")
        logged = text.startswith(LOGGED_ERROR)
        text = re.sub(r"^(\.\./)+", "", text.removeprefix(LOGGED_ERROR))
        wanted = ERROR_RE.search(text) or (logged and not text.endswith(":"))
        if wanted and text not in found:
            found.append(text)
    found.sort(key=lambda text: "error:" not in text)
    return found[:MAX_ERRORS]


def timeout_for(spec: Arch, accel: str) -> int:
    return KVM_TIMEOUT_S if accel == "kvm" else spec.kunit.tcg_timeout_s


def execute(worktree: Path, spec: Arch, common: list[str], accel: str, json_path: Path,
            log: Path) -> Ran:
    json_path.unlink(missing_ok=True)
    timeout = timeout_for(spec, accel)
    cmd = [sys.executable, KUNIT_PY, "exec", *common, f"--timeout={timeout}",
           *accel_args(spec, accel), f"--json={json_path}"]
    return run_logged(cmd, worktree, log, timeout + 120)


def timed_out(ran: Ran) -> bool:
    return ran.returncode is None or bool(TIMED_OUT_RE.search(ran.output))


def exec_result(arch: str, variant: Variant, ran: Ran, json_path: Path, console: Path,
                source: str, accel_note: str, build_s: float, exec_s: float, log: Path,
                command: str) -> KunitRun:
    suite = suite_name(source) or "?"
    console_text = console.read_text(errors="replace") if console.is_file() else ""
    found = parse_json(json_path.read_text()) if json_path.is_file() else []
    cases = merge(found, console_cases(console_text))
    cases += missing_cases(cases, suite, case_names(source))
    result = KunitRun(arch, variant, "no-results", "", tuple(cases), accel=accel_note,
                      build_s=build_s, exec_s=exec_s, log=str(log),
                      console_log=str(console) if console.is_file() else None, command=command)
    if not any(c.suite == suite and c.status != "error" for c in cases):
        why = (f"the guest timed out before suite {suite} reported (hung guest?)"
               if timed_out(ran) else f"suite {suite} gave no results")
        return replace(result, summary=f"{why} ({accel_note})")
    bad = [c for c in cases if c.status in ("fail", "error")]
    summary = (f"{len(bad)} of {len(cases)} cases failed" if bad
               else f"{len(cases)} cases passed or skipped")
    return replace(result, outcome="failed" if bad else "passed",
                   summary=f"{summary} ({accel_note})")


def tree_prefixes(worktree: Path, build: Path) -> tuple[str, str]:
    """How the tree's path shows in compiler messages and __FILE__: absolute (kbuild with
    O=), or relative to the build dir (ccache with CCACHE_BASEDIR rewrites it so)."""
    return f"{worktree}/", os.path.relpath(worktree, build) + "/"


def tree_relative(case: CaseResult, worktree: Path, build: Path) -> CaseResult:
    """File names in a case's diagnostics relative to the tree, as kbuild prints them."""
    prefixes = tree_prefixes(worktree, build)
    lines = []
    for line in case.diagnostics:
        for prefix in prefixes:
            line = line.replace(prefix, "")
        lines.append(line)
    return replace(case, diagnostics=tuple(lines))


def run_logged(cmd: Sequence[str | Path], cwd: Path, log: Path, timeout_s: int,
               env: dict[str, str] | None = None, expected_s: float | None = None) -> Ran:
    """Run CMD through proc.run (its own process group, LC_ALL=C, output appended to LOG);
    a run past TIMEOUT_S is killed with its group and comes back with returncode None, so
    the caller can still read what kunit.py printed before it hung."""
    start = log.stat().st_size if log.exists() else 0
    try:
        proc = run(cmd, cwd=cwd, env=env, log=log, timeout_s=timeout_s, check=False,
                   expected_s=expected_s)
    except ToolTimeout:
        text = log.read_bytes()[start:].decode(errors="replace")
        return Ran(None, text.partition("\n")[2])
    return Ran(proc.returncode, proc.stdout)


# --- KVM or TCG -----------------------------------------------------------------------------


def choose_accel(ctx: Context, worktree: Path, spec: Arch, common: list[str],
                 log: Path) -> tuple[str, str]:
    """("kvm" | "tcg", why): see kernel/kvm.py; our probe guest is the built KUnit kernel."""
    return kvm.choose_accel(ctx.cache, spec, lambda: kvm_boots(worktree, spec, common, log))


def kvm_boots(worktree: Path, spec: Arch, common: list[str], log: Path) -> bool:
    """Boot the built kernel under KVM, running no suite: does the kernel print anything?"""
    progress(f"kunit: probing KVM for {spec.name} (up to {PROBE_TIMEOUT_S} s)")
    cmd = [sys.executable, KUNIT_PY, "exec", *common, f"--timeout={PROBE_TIMEOUT_S}",
           *accel_args(spec, "kvm"), "--raw_output=all", PROBE_FILTER]
    ran = run_logged(cmd, worktree, log, PROBE_TIMEOUT_S + 60)
    return "Linux version" in ran.output or "KTAP version" in ran.output


def split_by_arch(options: KunitOptions) -> tuple[tuple[str, KunitOptions], ...]:
    """One job per arch, the base run with the arch whose base verify runs."""
    return tuple((arch, replace(options, arches=(arch,), base_arches=tuple(
        a for a in options.base_arches if a == arch))) for arch in options.arches)


def merge_jobs(stages: Sequence[Stage]) -> Stage:
    """Per-arch job stages as one: every run's checks and data (each check is per arch)."""
    checks = [c for s in stages for c in s.checks]
    first = stages[0]
    data = {**first.data, "runs": [r for s in stages for r in s.data.get("runs", [])]}
    return replace(first, status=worst([s.status for s in stages]),
                   summary="; ".join(s.summary for s in stages), checks=tuple(checks),
                   duration_s=round(sum(s.duration_s for s in stages), 3), data=data)


STAGE: StageDef[KunitOptions] = StageDef(
    name="kunit", help="run the MHP_DRIVER_MANAGED KUnit suite (kunit.py, QEMU); "
    "--against-base proves it bites", run=kunit_stage, from_args=options_from_args,
    for_verify=verify_options, to_args=options_to_args, configure=configure_parser,
    needs=lambda _o: ("apply",), tools=tools_for, render=render, split=split_by_arch,
    merge=merge_jobs)
