"""Per arch: merge and check the config, then decide for each planned file whether this arch
builds it (its gating symbols from the Makefiles, kconfiglib for why not) and, for a caller,
whether its calls are compiled under this config."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kseries.core import stamped
from kseries.core.context import progress
from kseries.core.errors import KseriesError
from kseries.core.report import stopwatch
from kseries.kernel import kbuild
from kseries.kernel.arches import Arch, toolchain_version
from kseries.kernel.cpp import evaluate, guards
from kseries.kernel.kconfig import (
    ConfigResult,
    KconfigProblem,
    build_fragments,
    read_config_values,
    setup_config,
)
from kseries.stages.build.plan import Target

CAN_ENABLE_CACHE = ".kseries-can-enable.json"


@dataclass(frozen=True)
class Cell:
    """One file on one arch: built / not-buildable / failed, with the reason; for a caller,
    whether its calls are compiled (compiled / compiled out / unknown)."""

    status: str
    reason: str = ""
    calls: str = ""


@dataclass(frozen=True)
class ArchSetup:
    arch: Arch
    build_dir: Path
    out_dir: Path
    config: Path
    problems: tuple[KconfigProblem, ...]
    fragments: tuple[Path, ...]
    toolchain: str
    duration_s: float
    buildable: Mapping[str, Cell]
    stamp: str = ""

    @property
    def objects(self) -> tuple[str, ...]:
        return tuple(kbuild.object_for(s) for s, c in self.buildable.items()
                     if c.status == "buildable")


def build_dir_for(cache: Path, worktree: Path, arch: Arch, fragments: Sequence[Path]) -> Path:
    """<cache>/build/series-<arch>-<worktree key>-<fragments key>: one warm O= dir per arch,
    tree and config. Series on a tree that lacks a symbol a fragment needs (the base, v2)
    merge fewer fragments than v3: in one shared dir each switch redid the config, its
    kconfiglib answers and `make prepare`, and recompiled what the config touches."""
    key = worktree.name.rsplit("-", 1)[-1]
    digest = hashlib.sha1()
    for fragment in fragments:
        digest.update(fragment.name.encode() + b"\0" + fragment.read_bytes() + b"\0")
    return cache / "build" / f"series-{arch.name}-{key}-{digest.hexdigest()[:8]}"


def configure(cache: Path, worktree: Path, arch: Arch, out: Path,
              targets: Sequence[Target]) -> ArchSetup:
    """Merge and validate the config, then decide which targets this arch can build."""
    fragments = build_fragments(arch, tree=worktree)
    build_dir = build_dir_for(cache, worktree, arch, fragments)
    out_dir = out / "build" / arch.name
    out_dir.mkdir(parents=True, exist_ok=True)
    with stopwatch() as took:
        progress(f"build {arch.name}: config {arch.defconfig} + "
                 f"{' '.join(f.name for f in fragments)}")
        result = setup_config(worktree, build_dir, arch, fragments, log=out_dir / "config.log")
        shutil.copyfile(result.config, out_dir / "config")
        buildable = coverage_for(worktree, build_dir, arch, result, targets)
    return ArchSetup(arch, build_dir, out_dir, result.config, result.problems,
                     tuple(fragments), toolchain_version(arch), took[0], buildable, result.stamp)


def coverage_for(worktree: Path, build_dir: Path, arch: Arch, config: ConfigResult,
                 targets: Sequence[Target]) -> dict[str, Cell]:
    """Per target: 'buildable' when its gating symbols are on, else 'not-buildable' + why."""
    values = read_config_values(config.config.read_text())
    cache = _CanEnable(build_dir, config)
    cells: dict[str, Cell] = {}
    for target in targets:
        cell = _cell(worktree, arch, values, cache, target.source)
        if cell.status == "buildable" and target.calls:
            text = (worktree / target.source).read_text(errors="replace")
            state, why = compiled_calls(text, target.calls, values)
            cell = Cell(cell.status, f"{cell.reason}; {why}" if why else cell.reason, state)
        cells[target.source] = cell
    cache.save()
    return cells


def _cell(worktree: Path, arch: Arch, values: Mapping[str, str], cache: _CanEnable,
          source: str) -> Cell:
    home = kbuild.arch_of(source)
    if home is not None and home != arch.kernel_arch:
        return Cell("not-buildable", f"arch/{home}/ is built only with ARCH={home}")
    try:
        symbols = kbuild.gating_symbols(worktree, source)
    except KseriesError as err:
        return Cell("not-buildable", str(err))
    for gate in symbols:
        name = gate.lstrip("!").removeprefix("CONFIG_")
        on = values.get(name, "n") not in ("n", "")
        if gate.startswith("!"):
            if on:
                return Cell("not-buildable", f"built only without CONFIG_{name}, which is set")
            continue
        if on:
            continue
        possible, reason = cache.can_enable(name)
        if not possible:
            return Cell("not-buildable", reason)
        return Cell("not-buildable", f"CONFIG_{name} is not set but could be: add it to "
                                     f"Kconfig.fragments/{arch.name}.config")
    return Cell("buildable", " ".join(symbols) or "always built")


def compiled_calls(text: str, lines: Sequence[int], values: Mapping[str, str]
                   ) -> tuple[str, str]:
    """('compiled' | 'compiled out' | 'unknown', why) for the call LINES under a config."""
    conditions = guards(text)
    blocked = []
    for line in lines:
        terms = conditions[line - 1] if 0 < line <= len(conditions) else ()
        results = [evaluate(t, values) for t in terms]
        if all(r is True for r in results):
            return "compiled", ""
        if False not in results:
            return "unknown", "depends on a non-CONFIG macro"
        blocked.append(next(t for t, r in zip(terms, results, strict=True) if r is False))
    return "compiled out", f"every call is under #if {' / '.join(dict.fromkeys(blocked))}"


class _CanEnable:
    """can_enable answers for one arch, cached in the build dir per config stamp; kconfiglib
    is only loaded when an answer is missing."""

    def __init__(self, build_dir: Path, config: ConfigResult) -> None:
        self.stamp = config.stamp
        self.kconfig = config.kconfig
        self.path = build_dir / CAN_ENABLE_CACHE
        self.answers: dict[str, list[Any]] = {}
        self.dirty = False
        saved = stamped.load(self.path, self.stamp)
        if isinstance(saved, dict):
            self.answers = dict(saved)

    def can_enable(self, name: str) -> tuple[bool, str]:
        if name not in self.answers:
            try:
                self.answers[name] = list(self.kconfig.get().can_enable(name))
            except KseriesError as err:  # a Kconfig kconfiglib cannot parse: not fatal
                return False, (f"CONFIG_{name} is not set; kconfiglib cannot say if it can "
                               f"be ({err})")
            self.dirty = True
        possible, reason = self.answers[name]
        return bool(possible), str(reason)

    def save(self) -> None:
        if self.dirty:
            stamped.save(self.path, self.stamp, self.answers)
