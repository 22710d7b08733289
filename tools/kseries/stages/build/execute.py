"""The steps of one build run, in the one scratch worktree: the base (results cached per
object while the base and the config stay the same), then each patch of the series (only the
objects that patch touches or that include a header it touches; the last patch builds every
object), then sparse (C=2) on the touched files. The worktree is checked out once per commit
and the arches build there side by side (each_arch)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kseries.core import git as g
from kseries.core.at_once import run_at_once
from kseries.core.context import progress
from kseries.kernel.arches import jobs
from kseries.kernel.kcmd import read_cmd
from kseries.kernel.kwarn import Diagnostic
from kseries.series.apply import ApplyResult, checkout
from kseries.stages.build.coverage import ArchSetup
from kseries.stages.build.make import ResultCache, StepResult, build_objects, diagnostic_from
from kseries.stages.build.options import SPARSE_ARCH, SPARSE_FLAGS, WARN_FLAGS, BuildOptions
from kseries.stages.build.plan import Plan

KBUILD_FILES_RE = re.compile(r"(^|/)(Makefile|Kbuild|Kconfig[^/]*)$")
# Only C sources, headers and assembly count as what an object was built from.
SOURCE_FILE_RE = re.compile(r"\.[chS]$")
BASE_CACHE = ".kseries-base.json"


@dataclass
class BaseCache:
    """Per object: did it build at the base, and its diagnostics (plus sparse's)."""

    path: Path
    key: str
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    sparse: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, build_dir: Path, key: str) -> BaseCache:
        path = build_dir / BASE_CACHE
        try:
            data = json.loads(path.read_text())
            if data.get("key") == key:
                return cls(path, key, dict(data["objects"]), dict(data["sparse"]))
        except (FileNotFoundError, ValueError, KeyError):
            pass
        return cls(path, key)

    def save(self) -> None:
        self.path.write_text(json.dumps({"key": self.key, "objects": self.objects,
                                         "sparse": self.sparse}))

    def record(self, result: StepResult) -> None:
        for obj in result.objects:
            self.objects[obj] = {"ok": obj not in result.failed, "diagnostics": [
                asdict(d) for d in result.diagnostics if d.obj == obj]}

    def record_sparse(self, result: StepResult) -> None:
        for obj in result.objects:
            self.sparse[obj] = [asdict(d) for d in result.diagnostics
                                if d.obj == obj and d.tool == "sparse"]

    def diagnostics(self, objects: Iterable[str]) -> list[Diagnostic]:
        return [diagnostic_from(d) for o in objects for d in self.objects.get(o, {}).get(
            "diagnostics", [])]

    def sparse_diagnostics(self, objects: Iterable[str]) -> list[Diagnostic]:
        return [diagnostic_from(d) for o in objects for d in self.sparse.get(o, [])]

    def failed(self, objects: Iterable[str]) -> list[str]:
        return [o for o in objects if o in self.objects and not self.objects[o]["ok"]]


def base_key(setup: ArchSetup, worktree: Path, base: str) -> str:
    text = repr((base, setup.stamp, setup.toolchain, WARN_FLAGS, SPARSE_FLAGS, str(worktree)))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ArchRun:
    """Everything one arch produced in this run."""

    setup: ArchSetup
    cache: BaseCache
    results: ResultCache
    steps: list[StepResult] = field(default_factory=list)
    base_objects: tuple[str, ...] = ()
    sparse_objects: tuple[str, ...] = ()
    sparse_head: StepResult | None = None
    base_step: StepResult | None = None
    base_reused: bool = False


def sources_at(worktree: Path, commit: str, objects: Sequence[str],
               sources: Mapping[str, str]) -> tuple[str, ...]:
    """The OBJECTS whose source (SOURCES: object -> source) exists at COMMIT."""
    proc = g.run_git(worktree, "ls-tree", "-r", "--name-only", commit, "--",
                     *[sources[o] for o in objects], check=False)
    present = set(proc.stdout.split())
    return tuple(o for o in objects if sources[o] in present)


def affected_objects(build_dir: Path, objects: Sequence[str], files: frozenset[str],
                     roots: Sequence[Path], sources: Mapping[str, str]) -> list[str]:
    """The OBJECTS whose source (SOURCES: object -> source) or any header they include (from
    kbuild's .cmd files) is in FILES; every object when FILES holds a Makefile, Kbuild or
    Kconfig file."""
    if any(KBUILD_FILES_RE.search(f) for f in files):
        return list(objects)
    chosen = []
    for obj in objects:
        deps = object_deps(build_dir, obj, roots)
        if deps is None or sources.get(obj) in files or deps & files:
            chosen.append(obj)
    return chosen


def object_deps(build_dir: Path, obj: str, roots: Sequence[Path]) -> set[str] | None:
    """Tree-relative sources and headers OBJ was built from (its .cmd file), None if never
    built: a file under one of ROOTS is made relative to it."""
    cmd = read_cmd(build_dir, obj)
    if cmd is None:
        return None
    prefixes = [str(root).rstrip("/") + "/" for root in roots]
    deps: set[str] = set()
    for name in (f for f in (cmd.source, *cmd.deps) if f and SOURCE_FILE_RE.search(f)):
        # kbuild writes a file relative to the build dir when srctree is relative (../..).
        path = os.path.normpath(build_dir / name)
        prefix = next((p for p in prefixes if path.startswith(p)), None)
        deps.add(path[len(prefix):] if prefix is not None else name)
    return deps


def execute(worktree: Path, applied: ApplyResult, plan: Plan, runs: Sequence[ArchRun],
            options: BuildOptions) -> None:
    """Build the base, every patch (or only the head) and sparse, the arches side by side
    at each commit so the worktree is checked out once per commit."""
    touched_objects = {t.obj for t in plan.targets if t.why.startswith("touched")}
    for arch_run in runs:
        objects = arch_run.setup.objects
        arch_run.base_objects = sources_at(worktree, applied.base, objects, plan.sources)
        if options.sparse and arch_run.setup.arch.name == SPARSE_ARCH:
            arch_run.sparse_objects = tuple(o for o in objects if o in touched_objects)
    if options.base:
        build_base(worktree, applied.base, runs, options.arch_workers or jobs())
    steps: list[tuple[str, str, frozenset[str] | None]] = []
    if options.bisect and applied.patches:
        steps = [(f"patch-{p.index}", p.commit, files)
                 for p, files in zip(applied.patches, plan.patch_files, strict=True)]
        last = steps[-1]
        steps[-1] = (last[0], last[1], None)
    else:
        steps = [("head", applied.head, None)]
    roots = (worktree,)
    workers = options.arch_workers or jobs()
    for step, commit, files in steps:
        checkout(worktree, commit)

        def build_step(arch_run: ArchRun, stop: threading.Event | None,
                       step: str = step, commit: str = commit,
                       files: frozenset[str] | None = files) -> None:
            setup = arch_run.setup
            chosen = list(setup.objects) if files is None else affected_objects(
                setup.build_dir, setup.objects, files, (*roots, setup.build_dir),
                plan.sources)
            # A file the series adds later (its KUnit suite) is not there yet.
            chosen = list(sources_at(worktree, commit, chosen, plan.sources))
            if chosen:
                arch_run.steps.append(build_objects(setup, worktree, commit, step, chosen,
                                                    results=arch_run.results, stop=stop))
        each_arch(runs, build_step, workers)

    def sparse_head(arch_run: ArchRun, stop: threading.Event | None) -> None:
        broken = set(arch_run.steps[-1].failed) if arch_run.steps else set()
        checkable = [o for o in arch_run.sparse_objects if o not in broken]
        if checkable:
            arch_run.sparse_head = build_objects(arch_run.setup, worktree, applied.head,
                                                 "sparse-head", checkable, SPARSE_FLAGS,
                                                 remove=False, results=arch_run.results,
                                                 stop=stop)
    each_arch(runs, sparse_head, workers)


def each_arch(runs: Sequence[ArchRun], work: Callable[[ArchRun, threading.Event | None], None],
              workers: int) -> None:
    """WORK for every arch at the one commit the worktree is at, WORKERS arches at once
    (each has its own build dir). Each make of a step spends seconds in kbuild's own
    single-threaded work (syncconfig, prepare, walking the tree) even when ccache answers
    every compile: a second arch beside it uses the other core. When one arch fails or
    Ctrl-C arrives, the makes beside it are stopped (core/at_once.py)."""
    run_at_once([partial(work, arch_run) for arch_run in runs], workers, "kseries-build")


def build_base(worktree: Path, base: str, runs: Sequence[ArchRun], workers: int = 1) -> None:
    """Build at the base only what the cache does not already know."""
    missing = {id(r): [o for o in r.base_objects if o not in r.cache.objects] for r in runs}
    sparse_missing = {id(r): [o for o in r.sparse_objects if o not in r.cache.sparse
                              and o in r.base_objects] for r in runs}
    for arch_run in runs:
        arch_run.base_reused = not missing[id(arch_run)] and not sparse_missing[id(arch_run)]
        if arch_run.base_reused:
            progress(f"build {arch_run.setup.arch.name} base: reusing results for "
                     f"{len(arch_run.base_objects)} object(s) (base and config unchanged)")
    if all(r.base_reused for r in runs):
        return
    checkout(worktree, base)

    def build_arch_base(arch_run: ArchRun, stop: threading.Event | None) -> None:
        todo = missing[id(arch_run)]
        if todo:
            result = build_objects(arch_run.setup, worktree, base, "base", todo,
                                   results=arch_run.results, stop=stop)
            arch_run.cache.record(result)
            arch_run.base_step = result
        if sparse_missing[id(arch_run)]:
            result = build_objects(arch_run.setup, worktree, base, "sparse-base",
                                   sparse_missing[id(arch_run)], SPARSE_FLAGS, remove=False,
                                   results=arch_run.results, stop=stop)
            arch_run.cache.record_sparse(result)
        arch_run.cache.save()
    each_arch(runs, build_arch_base, workers)
