"""<out>/build/<arch>/metadata.json in tuxmake's shape: exactly two levels, group -> key ->
value, where a value is a scalar or a list of scalars (tuxmake's docs/metadata.md).

tuxmake's groups as tuxmake fills them: build (targets, target_arch, toolchain, wrapper,
kconfig, kconfig_add, jobs, reproducer_cmdline, runtime, verbose), results (status, errors,
warnings, error_list, warning_list, duration; a target's status and duration are flattened
to <target>_status and <target>_duration), compiler (name, version, version_full), git
(git_describe, git_branch, git_commit, git_url), source (kernelversion and, for the default
tree, the Debian package), ccache (cache_hits, cache_misses from `ccache --print-stats`;
ours: remote_hits, remote_misses where ccache has remote storage counters, 4.4+).
Ours, in the same two levels: kseries (the series, its base and head), objects (object ->
"step:STATUS" per step that built it) and coverage (file -> why it is or is not built).

Every path in it is relative to the directory that holds metadata.json (tuxmake's output
directory); a path elsewhere on this machine (the O= build dir, the worktree) is left out.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kseries.core import git as g
from kseries.core.context import Context
from kseries.core.proc import run
from kseries.core.report import Check, Status, kseries_version
from kseries.kernel.arches import jobs
from kseries.kernel.kwarn import errors_only, warnings_only
from kseries.kernel.tree import kernel_version
from kseries.series.apply import ApplyResult
from kseries.stages.build.execute import ArchRun
from kseries.stages.build.options import WARN_FLAGS

METADATA_NAME = "metadata.json"
Scalar = str | int | float | bool | None
Value = Scalar | Sequence[Scalar]
Group = dict[str, Value]
TUXMAKE_STATUS: Mapping[Status, str] = {"pass": "PASS", "warn": "PASS", "skip": "SKIP",
                                        "fail": "FAIL", "error": "FAIL"}
CCACHE_HITS = ("direct_cache_hit", "preprocessed_cache_hit")
CCACHE_MISSES = ("cache_miss",)
# A remote hit is also a cache hit above (ccache reads it, then answers as from its own).
CCACHE_REMOTE: Mapping[str, str] = {"remote_hits": "remote_storage_hit",
                                     "remote_misses": "remote_storage_miss"}
# "gcc (Debian 12.2.0-14) 12.2.0", "gcc (GCC) 14.1.1 20240720": the version after the ")".
VERSION_RE = re.compile(r"\)\s+(\d+\.\d+(?:\.\d+)?)\b")


@dataclass(frozen=True, kw_only=True)
class RunFacts:
    """What every arch's metadata.json of one build run shares."""

    series: str
    revision: str
    base: str
    head: str
    source: Group
    git: Group
    ccache: Group
    reproducer: tuple[str, ...]
    jobs: int
    version: str = field(default_factory=kseries_version)


# -- the facts of a run ----------------------------------------------------------------------


def parse_ccache_stats(text: str) -> dict[str, int]:
    """`ccache --print-stats` (ccache >= 3.7): one 'key<TAB>value' line per counter."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition("\t")
        if value.strip().isdigit():
            counts[key.strip()] = int(value)
    return counts


def ccache_counts() -> dict[str, int] | None:
    """ccache's counters now, or None without a ccache that prints them."""
    if shutil.which("ccache") is None:
        return None
    proc = run(["ccache", "--print-stats"], check=False, timeout_s=60)
    counts = parse_ccache_stats(proc.stdout) if proc.returncode == 0 else {}
    return counts or None


def ccache_group(before: Mapping[str, int] | None, after: Mapping[str, int] | None) -> Group:
    """tuxmake's ccache group: hits and misses of this run (AFTER - BEFORE; the counters are
    the whole cache's, so they cover every arch of the run and any other user meanwhile)."""
    if after is None:
        return {}
    start = before or {}

    def delta(keys: Sequence[str]) -> int:
        return sum(after.get(k, 0) - start.get(k, 0) for k in keys)

    group: Group = {"cache_hits": delta(CCACHE_HITS), "cache_misses": delta(CCACHE_MISSES)}
    group |= {name: delta((key,)) for name, key in CCACHE_REMOTE.items() if key in after}
    group["scope"] = "this build stage, every arch" if before is not None else "cumulative"
    return group


def git_group(worktree: Path, head: str, branch: str) -> Group:
    """tuxmake's git group for the worktree at HEAD (git_url only for a remote URL)."""
    describe = g.git(worktree, "describe", "--tags", "--always", head, check=False)
    group: Group = {"git_describe": describe or head[:12], "git_branch": branch,
                    "git_commit": head}
    url = g.config_value(worktree, "remote.origin.url")
    if url and "://" in url and not url.startswith("file:"):
        group["git_url"] = url
    return group


def source_group(ctx: Context, worktree: Path) -> Group:
    """tuxmake's source group (kernelversion), and the Debian package of the default tree."""
    group: Group = {"kernelversion": kernel_version(worktree)}
    if ctx.options.tree is None:
        base = ctx.config.base
        group.update({"tree": "default", "package": base.package,
                      "package_version": base.version, "upstream_version": base.upstream})
    else:
        group["tree"] = "user"
    return group


def run_facts(ctx: Context, applied: ApplyResult,
              ccache_before: Mapping[str, int] | None) -> RunFacts:
    return RunFacts(series=ctx.config.name, revision=ctx.revision_name, base=applied.base,
                    head=applied.head, source=source_group(ctx, applied.worktree),
                    git=git_group(applied.worktree, applied.head, applied.branch),
                    ccache=ccache_group(ccache_before, ccache_counts()),
                    reproducer=reproducer_words(ctx), jobs=jobs())


def reproducer_words(ctx: Context) -> tuple[str, ...]:
    """`kseries build` on the same input; its paths are made relative per arch later."""
    opts = ctx.options
    words = ["kseries", "build"]
    for flag, path in (("--tree", opts.tree), ("--series", opts.series_file),
                       ("--mbox", opts.mbox)):
        if path is not None:
            words += [flag, str(path.resolve())]
    if opts.mbox is None and opts.revision is not None:
        words += ["--revision", opts.revision]
    if opts.base_version is not None:
        words += ["--base-version", opts.base_version]
    return tuple(words)


# -- one arch --------------------------------------------------------------------------------


def relative(path: str | Path | None, start: Path) -> str | None:
    """PATH relative to START (a relative PATH is taken as relative to START already)."""
    if path is None or str(path) == "":
        return None
    if not Path(path).is_absolute():
        return str(path)
    return os.path.relpath(path, start)


def arch_checks(arch_run: ArchRun, checks: Sequence[Check]) -> dict[str, Check]:
    """This arch's checks by target: config, base, patch-N or head, sparse."""
    prefix = f"{arch_run.setup.arch.name} "
    return {c.name.removeprefix(prefix): c for c in checks if c.name.startswith(prefix)}


def overall(statuses: Sequence[Status]) -> str:
    return "FAIL" if any(TUXMAKE_STATUS[s] == "FAIL" for s in statuses) else "PASS"


def build_group(arch_run: ArchRun, targets: Sequence[str], facts: RunFacts, here: Path,
                status: str, duration: float) -> Group:
    setup = arch_run.setup
    words = [w if not w.startswith("/") else str(relative(w, here)) for w in facts.reproducer]
    return {
        "targets": list(targets), "target_arch": setup.arch.name,
        "kernel_arch": setup.arch.kernel_arch, "toolchain": "gcc",
        "cross_compile": setup.arch.cross_compile, "wrapper": "ccache",
        "kconfig": setup.arch.defconfig,
        "kconfig_add": [f.name for f in setup.fragments],
        "make_variables": list(WARN_FLAGS), "jobs": facts.jobs, "runtime": "null",
        "verbose": False, "config": relative(setup.out_dir / "config", here),
        "reproducer_cmdline": [*words, "--arch", setup.arch.name],
        "reproducer": shlex.join([*words, "--arch", setup.arch.name]),
        "duration": duration, "status": status,
    }


def results_group(arch_run: ArchRun, mine: Mapping[str, Check], here: Path, status: str,
                  duration: float) -> Group:
    diagnostics = [d for r in arch_run.steps for d in r.diagnostics]
    warnings = list(dict.fromkeys(d.headline() for d in warnings_only(diagnostics)))
    errors = list(dict.fromkeys(d.headline() for d in errors_only(diagnostics)))
    group: Group = {"status": status, "errors": len(errors), "warnings": len(warnings),
                    "error_list": errors, "warning_list": warnings, "duration": duration}
    for target, check in mine.items():
        group[f"{target}_status"] = TUXMAKE_STATUS[check.status]
        group[f"{target}_duration"] = check.duration_s
        log = relative(check.log, here)
        if log is not None:
            group[f"{target}_log"] = log
    return group


def compiler_group(version_full: str) -> Group:
    """tuxmake's compiler group from the first line of `<cc> --version`."""
    found = VERSION_RE.search(version_full)
    return {"name": "gcc", "version": found.group(1) if found else version_full,
            "version_full": version_full}


def objects_group(arch_run: ArchRun) -> Group:
    """object -> ["base:PASS", "patch-1:FAIL", ...] for every step that built it."""
    return {o: [f"{r.step}:{'FAIL' if o in r.failed else 'PASS'}" for r in arch_run.steps
                if o in r.objects] for o in arch_run.setup.objects}


def coverage_group(arch_run: ArchRun) -> Group:
    """file -> 'buildable: <gating symbols>' or 'not-buildable: <why>' on this arch."""
    return {source: f"{cell.status}: {cell.reason}" if cell.reason else cell.status
            for source, cell in arch_run.setup.buildable.items()}


def metadata_for(arch_run: ArchRun, checks: Sequence[Check], facts: RunFacts) -> dict[str, Group]:
    """The metadata.json of one arch, as a dict of groups."""
    setup = arch_run.setup
    here = setup.out_dir
    mine = arch_checks(arch_run, checks)
    status = overall([c.status for c in mine.values()])
    duration = round(sum(c.duration_s for c in mine.values()), 3)
    groups: dict[str, Group] = {
        "build": build_group(arch_run, list(mine), facts, here, status, duration),
        "results": results_group(arch_run, mine, here, status, duration),
        "compiler": compiler_group(setup.toolchain),
        "git": dict(facts.git), "source": dict(facts.source), "ccache": dict(facts.ccache),
        "kseries": {"version": facts.version, "series": facts.series,
                    "revision": facts.revision, "base": facts.base, "head": facts.head,
                    "base_reused": arch_run.base_reused,
                    "config_problems": [str(p) for p in setup.problems]},
        "objects": objects_group(arch_run), "coverage": coverage_group(arch_run),
    }
    return {name: group for name, group in groups.items() if group}


def write_metadata(arch_run: ArchRun, checks: Sequence[Check], facts: RunFacts) -> Path:
    """<out>/build/<arch>/metadata.json."""
    path = arch_run.setup.out_dir / METADATA_NAME
    path.write_text(json.dumps(metadata_for(arch_run, checks, facts), indent=2) + "\n")
    return path
