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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from unidiff.patch import PatchSet

from kseries.core import git as g
from kseries.core.context import Context, progress
from kseries.core.errors import KseriesError
from kseries.core.pipeline import RunState, StageDef
from kseries.core.proc import command_line, require_program, run
from kseries.core.report import Check, Stage, Status, stage_from_checks, stopwatch, worst
from kseries.kernel import kbuild
from kseries.kernel.arches import (
    ARCHES,
    Arch,
    check_toolchain,
    get_arch,
    make_command,
    toolchain_version,
)
from kseries.kernel.ctokens import find_calls, function_spans, signatures_in, tokenize
from kseries.kernel.kconfig import (
    ConfigResult,
    KconfigProblem,
    build_fragments,
    merge_config,
    read_config_values,
    setup_config,
)
from kseries.kernel.kwarn import (
    Diagnostic,
    errors_only,
    fixed_warnings,
    format_0day,
    new_warnings,
    parse_diagnostics,
    warnings_only,
)
from kseries.kernel.tree import Tree
from kseries.series.apply import (
    ApplyResult,
    apply_series,
    checkout,
    ensure_worktree,
    remove_worktree,
    scratch_branch,
)
from kseries.series.mbox import read_series

WARN_FLAGS = ("W=1",)
MAKE_FLAGS = ("-k", "-Otarget")
SPARSE_FLAGS = ("C=2",)
SPARSE_ARCH = "x86_64"
NOT_KERNEL_OBJECTS = ("tools/", "scripts/", "Documentation/", "usr/")
KBUILD_FILES_RE = re.compile(r"(^|/)(Makefile|Kbuild|Kconfig[^/]*)$")
BASE_CACHE = ".kseries-base.json"
RESULTS_CACHE = ".kseries-results.json"
RESULTS_KEPT = 4000
CAN_ENABLE_CACHE = ".kseries-can-enable.json"
MAX_LINES = 40


@dataclass(frozen=True)
class BuildOptions:
    arches: tuple[Arch, ...]
    base: bool = True
    bisect: bool = True
    sparse: bool = True


# -- what the series touches ----------------------------------------------------------------


@dataclass(frozen=True)
class FileChange:
    """One file of a diff and the line numbers it changes on each side (-U0)."""

    path: str
    old_path: str
    old_lines: frozenset[int]
    new_lines: frozenset[int]
    added: bool
    removed: bool


def diff_changes(worktree: Path, old: str, new: str) -> list[FileChange]:
    """The files changed between two commits, parsed with unidiff."""
    text = g.git(worktree, "diff", "--no-color", "--no-ext-diff", "-M", "-U0", old, new)
    changes = []
    for patched in PatchSet(text + "\n" if text else ""):
        old_lines = {line.source_line_no for hunk in patched for line in hunk
                     if line.is_removed and line.source_line_no}
        new_lines = {line.target_line_no for hunk in patched for line in hunk
                     if line.is_added and line.target_line_no}
        source = patched.source_file.removeprefix("a/")
        changes.append(FileChange(patched.path, source, frozenset(old_lines),
                                  frozenset(new_lines), patched.is_added_file,
                                  patched.is_removed_file))
    return changes


def _show(worktree: Path, commit: str, path: str) -> str:
    proc = run(["git", "-C", str(worktree), "show", f"{commit}:{path}"], check=False)
    return proc.stdout if proc.returncode == 0 else ""


def functions_at(text: str, lines: Iterable[int]) -> set[str]:
    """Functions (bodies, prototypes, function-like macros) that cover any of LINES."""
    wanted = sorted(set(lines))
    if not wanted or not text:
        return set()
    tokens = tokenize(text)
    spans = [(s.name, s.start_line, s.end_line) for s in function_spans(tokens)]
    spans += [(s.name, s.line, s.end_line) for s in signatures_in(tokens)]
    return {name for name, start, end in spans if any(start <= n <= end for n in wanted)}


def is_static(text: str, name: str) -> bool:
    """Whether NAME is defined static in TEXT (then only its own file can call it)."""
    return re.search(rf"\bstatic\b[^;{{}}()]*\b{re.escape(name)}\s*\(", text) is not None


def touched_functions(worktree: Path, base: str, head: str, changes: Sequence[FileChange]
                      ) -> dict[str, str]:
    """Function name -> file, for every non-static function whose definition or prototype
    (signature or body) the series changes; functions only static in a .c are left out."""
    touched: dict[str, str] = {}
    for change in changes:
        if not change.path.endswith((".c", ".h")):
            continue
        old = "" if change.added else _show(worktree, base, change.old_path)
        new = "" if change.removed else _show(worktree, head, change.path)
        names = functions_at(old, change.old_lines) | functions_at(new, change.new_lines)
        for name in sorted(names):
            if change.path.endswith(".c") and (is_static(new, name) or is_static(old, name)):
                continue
            touched.setdefault(name, change.path)
    return touched


def caller_files(worktree: Path, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Kernel .c files that call any of NAMES (git grep -w in the worktree, which is at the
    series' head, then confirmed as calls by ctokens: comments and mentions do not count)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    patterns = [arg for name in wanted for arg in ("-e", name)]
    proc = run(["git", "-C", str(worktree), "grep", "-l", "-w", "-F", *patterns, "--", "*.c",
                *(f":!{p}" for p in NOT_KERNEL_OBJECTS)], check=False)
    found: dict[str, tuple[str, ...]] = {}
    for path in proc.stdout.splitlines():
        text = (worktree / path).read_text(errors="replace")
        calls = {s.name for s in find_calls(text, wanted, path) if s.kind in ("call",
                                                                             "macro_call")}
        if calls:
            found[path] = tuple(sorted(calls))
    return found


@dataclass(frozen=True)
class Target:
    """A source file to compile, and why (for a caller: the lines of its calls)."""

    source: str
    obj: str
    why: str
    calls: tuple[int, ...] = ()


@dataclass(frozen=True)
class Plan:
    targets: tuple[Target, ...]
    skipped: tuple[tuple[str, str], ...]
    functions: Mapping[str, str]
    headers: tuple[str, ...]
    patch_files: tuple[frozenset[str], ...]

    @property
    def sources(self) -> dict[str, str]:
        """Object -> source file."""
        return {t.obj: t.source for t in self.targets}


def make_plan(worktree: Path, applied: ApplyResult, family: Sequence[str] = (),
              callers: Mapping[str, Sequence[str]] | None = None) -> Plan:
    """Which files to compile: touched .c files, then the files that call a function whose
    definition or prototype the series touches; when that includes a function of the API
    FAMILY (series.toml), the callers of every function of the family. CALLERS (file ->
    functions, from the caller checker) replaces the git grep when given."""
    changes = diff_changes(worktree, applied.base, applied.head)
    patch_files = []
    previous = applied.base
    for patch in applied.patches:
        patch_files.append(frozenset(p for c in diff_changes(worktree, previous, patch.commit)
                                     for p in {c.path, c.old_path}))
        previous = patch.commit
    functions = touched_functions(worktree, applied.base, applied.head, changes)
    wanted = dict(functions)
    if set(functions) & set(family):
        wanted.update({name: "api family" for name in family if name not in functions})
    found = dict(callers) if callers is not None else caller_files(worktree, wanted)
    targets: dict[str, Target] = {}
    skipped: list[tuple[str, str]] = []
    for change in changes:
        if change.removed or not change.path.endswith((".c", ".S")):
            continue
        if change.path.startswith(NOT_KERNEL_OBJECTS):
            skipped.append((change.path, "not a kernel object (user-space tool or script)"))
            continue
        patches = [str(i + 1) for i, files in enumerate(patch_files) if change.path in files]
        targets[change.path] = Target(change.path, kbuild.object_for(change.path),
                                      f"touched by patch {', '.join(patches)}")
    for path in sorted(found):
        if path not in targets and path.endswith(".c"):
            names = ", ".join(f"{n}()" for n in found[path])
            text = (worktree / path).read_text(errors="replace")
            lines = tuple(sorted({c.line for c in find_calls(text, found[path], path)
                                  if c.kind in ("call", "macro_call")}))
            targets[path] = Target(path, kbuild.object_for(path), f"calls {names}", lines)
    headers = tuple(c.path for c in changes if c.path.endswith(".h") and not c.removed)
    return Plan(tuple(targets.values()), tuple(skipped), wanted, headers, tuple(patch_files))


# -- per arch: config and coverage ----------------------------------------------------------


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


def build_dir_for(cache: Path, worktree: Path, arch: Arch) -> Path:
    """<cache>/build/series-<arch>-<worktree key>: one warm O= dir per arch and tree."""
    key = worktree.name.rsplit("-", 1)[-1]
    return cache / "build" / f"series-{arch.name}-{key}"


def configure(cache: Path, worktree: Path, arch: Arch, out: Path,
              targets: Sequence[Target]) -> ArchSetup:
    """Merge and validate the config, then decide which targets this arch can build."""
    build_dir = build_dir_for(cache, worktree, arch)
    out_dir = out / "build" / arch.name
    out_dir.mkdir(parents=True, exist_ok=True)
    fragments = build_fragments(arch)
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


PP_LINE_RE = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
PP_TOKEN_RE = re.compile(r"\w+|&&|\|\||[!=<>]=|<<|>>|\S")


def guards(text: str) -> list[tuple[str, ...]]:
    """For every line of C TEXT (index 0 is line 1), the #if conditions it is compiled under,
    as C preprocessor expressions (an #elif or #else branch also negates the ones before)."""
    stack: list[tuple[tuple[str, ...], str | None]] = []
    result: list[tuple[str, ...]] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line, count = lines[index], 1
        while line.endswith("\\") and index + count < len(lines):
            line = line[:-1] + " " + lines[index + count]
            count += 1
        if match := PP_LINE_RE.match(line):
            _directive(stack, match.group(1), re.sub(r"/\*.*?\*/|//.*", "", match.group(2)))
        terms = tuple(t for before, current in stack for t in
                      (*(f"!({b})" for b in before), *((current,) if current else ())))
        result.extend([terms] * count)
        index += count
    return result


def _directive(stack: list[tuple[tuple[str, ...], str | None]], keyword: str, arg: str) -> None:
    words = arg.split()
    if keyword == "if":
        stack.append(((), arg.strip()))
    elif keyword in ("ifdef", "ifndef"):
        name = words[0] if words else "?"
        stack.append(((), f"defined({name})" if keyword == "ifdef" else f"!defined({name})"))
    elif keyword in ("elif", "else") and stack:
        before, current = stack[-1]
        stack[-1] = ((*before, current or "1"), arg.strip() if keyword == "elif" else None)
    elif keyword == "endif" and stack:
        stack.pop()


def evaluate(expr: str, values: Mapping[str, str]) -> bool | None:
    """A preprocessor condition under a .config: True, False, or None when it depends on
    something else (a non-CONFIG macro, a comparison)."""
    parser = _Condition(PP_TOKEN_RE.findall(expr), values)
    try:
        value = parser.either()
    except (IndexError, ValueError):
        return None
    return value if parser.at == len(parser.tokens) else None


class _Condition:
    """Recursive descent over ||, &&, !, (), defined(), IS_ENABLED() and friends."""

    def __init__(self, tokens: list[str], values: Mapping[str, str]) -> None:
        self.tokens, self.values, self.at = tokens, values, 0

    def take(self) -> str:
        self.at += 1
        return self.tokens[self.at - 1]

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def either(self) -> bool | None:
        values = [self.both()]
        while self.peek() == "||":
            self.take()
            values.append(self.both())
        return True if True in values else None if None in values else False

    def both(self) -> bool | None:
        values = [self.unary()]
        while self.peek() == "&&":
            self.take()
            values.append(self.unary())
        return False if False in values else None if None in values else True

    def unary(self) -> bool | None:
        if self.peek() == "!":
            self.take()
            inner = self.unary()
            return None if inner is None else not inner
        return self.primary()

    def primary(self) -> bool | None:
        token = self.take()
        if token == "(":
            value = self.either()
            if self.take() != ")":
                raise ValueError(token)
            return value
        if token in ("defined", "IS_ENABLED", "IS_BUILTIN", "IS_MODULE", "IS_REACHABLE"):
            parens = self.peek() == "("
            if parens:
                self.take()
            name = self.take()
            if parens and self.take() != ")":
                raise ValueError(name)
            return self.symbol(token, name)
        if token.isdigit():
            return int(token) != 0
        if re.fullmatch(r"\w+", token):
            return self.symbol("value", token)
        raise ValueError(token)

    def symbol(self, test: str, name: str) -> bool | None:
        if not name.startswith("CONFIG_"):
            return None
        module = name.endswith("_MODULE") and test in ("defined", "value")
        value = self.values.get(name.removeprefix("CONFIG_").removesuffix("_MODULE")
                                if module else name.removeprefix("CONFIG_"), "n")
        if module:
            return value == "m"
        if test in ("defined", "value", "IS_BUILTIN"):
            return value == "y"
        if test == "IS_MODULE":
            return value == "m"
        if test == "IS_REACHABLE" and value == "m":
            return None
        return value in ("y", "m")


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
        try:
            saved = json.loads(self.path.read_text())
            if saved.get("stamp") == self.stamp:
                self.answers = dict(saved["symbols"])
        except (FileNotFoundError, ValueError, KeyError):
            pass

    def can_enable(self, name: str) -> tuple[bool, str]:
        if name not in self.answers:
            self.answers[name] = list(self.kconfig.get().can_enable(name))
            self.dirty = True
        possible, reason = self.answers[name]
        return bool(possible), str(reason)

    def save(self) -> None:
        if self.dirty:
            self.path.write_text(json.dumps({"stamp": self.stamp, "symbols": self.answers}))


# -- running make ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    """One make run on one arch at one commit: which objects failed, every diagnostic."""

    arch: str
    step: str
    commit: str
    objects: tuple[str, ...]
    failed: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]
    duration_s: float
    log: str
    reproducer: str
    returncode: int = 0
    reused: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed and self.returncode == 0


def run_make(cmd: Sequence[str]) -> tuple[int, str]:
    """Run make with stdout and stderr in one stream (a log reads as a terminal would show
    it, so each warning follows its 'CC' line); LC_ALL=C keeps gcc's quotes plain."""
    args = [require_program(cmd[0]), *cmd[1:]]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", check=False,
                          env={**os.environ, "LC_ALL": "C", "LANG": "C"})
    return proc.returncode, proc.stdout


def reproducer(arch: Arch, worktree: Path, build_dir: Path, commit: str,
               objects: Sequence[str], extra: Sequence[str] = WARN_FLAGS) -> str:
    """A command line a human can paste to redo one step."""
    checkout_cmd = command_line(["git", "-C", str(worktree), "checkout", "-q", "--detach",
                                 commit])
    make = command_line(make_command(arch, worktree, build_dir, *objects, extra=extra))
    return f"{checkout_cmd} && {make}"


class ResultCache:
    """What building an object printed, keyed by everything the build read: the compile
    command and the content of the source and of every header it included (from kbuild's
    .cmd file, as ccache's direct mode does), the .config and our make flags. An object
    whose key is known is not built again: its recorded diagnostics are used. Only
    successful builds are recorded; a failure is always rebuilt and shown."""

    def __init__(self, build_dir: Path, enabled: bool = True) -> None:
        self.build_dir = build_dir
        self.enabled = enabled
        self.path = build_dir / RESULTS_CACHE
        self.entries: dict[str, list[dict[str, Any]]] = {}
        self.hashes: dict[tuple[str, int, int], str] = {}
        config = build_dir / ".config"
        self.config_sha = hashlib.sha256(config.read_bytes()).hexdigest() \
            if config.is_file() else ""
        if enabled:
            with suppress(FileNotFoundError, ValueError):
                self.entries = dict(json.loads(self.path.read_text()))

    def key(self, obj: str, flags: Sequence[str]) -> str | None:
        if not self.enabled:
            return None
        directory, _, name = obj.rpartition("/")
        try:
            text = (self.build_dir / directory / f".{name}.cmd").read_text(errors="replace")
        except FileNotFoundError:
            return None
        command = next((line for line in text.splitlines() if line.startswith("savedcmd_")), "")
        digest = hashlib.sha256(repr((obj, tuple(flags), self.config_sha, command)).encode())
        for dep in re.findall(r"^\s+([^\s$\\]+)\s*\\?$", text, re.MULTILINE):
            path = Path(dep) if dep.startswith("/") else self.build_dir / dep
            content = self._file_hash(path)
            if content is None:
                return None
            digest.update(f"{dep}\0{content}\0".encode())
        source = re.search(r"^source_\S+ := (\S+)$", text, re.MULTILINE)
        if source is None or (content := self._file_hash(Path(source.group(1)))) is None:
            return None
        digest.update(content.encode())
        return digest.hexdigest()

    def _file_hash(self, path: Path) -> str | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        ident = (str(path), stat.st_mtime_ns, stat.st_size)
        if ident not in self.hashes:
            self.hashes[ident] = hashlib.sha1(path.read_bytes()).hexdigest()
        return self.hashes[ident]

    def get(self, key: str | None) -> list[Diagnostic] | None:
        if key is None or key not in self.entries:
            return None
        return [_diag_from(d) for d in self.entries[key]]

    def put(self, key: str | None, diagnostics: Iterable[Diagnostic]) -> None:
        if key is not None:
            self.entries.pop(key, None)
            self.entries[key] = [asdict(d) for d in diagnostics]

    def save(self) -> None:
        if self.enabled:
            kept = dict(list(self.entries.items())[-RESULTS_KEPT:])
            self.path.write_text(json.dumps(kept))


def build_objects(setup: ArchSetup, worktree: Path, commit: str, step: str,
                  objects: Sequence[str], extra: Sequence[str] = (), remove: bool = True,
                  results: ResultCache | None = None) -> StepResult:
    """make the OBJECTS and collect what failed and every diagnostic. With REMOVE the objects
    are deleted first, so that every warning is printed again (ccache makes rebuilding an
    unchanged object cheap); sparse (C=2) checks up-to-date objects without that. Objects
    RESULTS knows (same inputs as an earlier build) are not built again."""
    arch, build_dir = setup.arch, setup.build_dir
    flags = (*WARN_FLAGS, *extra)
    known = {o: results.get(results.key(o, flags)) for o in objects} if results else {}
    reused = {o: d for o, d in known.items() if d is not None}
    todo = [o for o in objects if o not in reused]
    for obj in todo if remove else ():
        (build_dir / obj).unlink(missing_ok=True)
    cmd = make_command(arch, worktree, build_dir, *todo, extra=(*flags, *MAKE_FLAGS))
    how = f", {len(reused)} reused (same inputs as before)" if reused else ""
    progress(f"build {arch.name} {step}: {len(objects)} object(s) at {commit[:12]}{how}")
    start = time.monotonic()
    returncode, output = run_make(cmd) if todo else (0, "")
    duration = round(time.monotonic() - start, 3)
    log = setup.out_dir / f"{step}.log"
    header = f"# reused, same inputs as an earlier build: {' '.join(reused)}\n" if reused else ""
    log.write_text(header + (f"$ {command_line(cmd)}\n{output}" if todo else ""))
    diagnostics = parse_diagnostics(output, (worktree, build_dir))
    failed = tuple(o for o in todo if not (build_dir / o).is_file())
    if results is not None:
        for obj in (o for o in todo if o not in failed):
            results.put(results.key(obj, flags), [d for d in diagnostics if d.obj == obj])
    diagnostics += [d for found in reused.values() for d in found]
    again = reproducer(arch, worktree, build_dir, commit, failed or objects, flags)
    result = StepResult(arch.name, step, commit, tuple(objects), failed, tuple(diagnostics),
                        duration, str(log), again, returncode, tuple(reused))
    state = "ok" if result.ok else f"FAILED ({', '.join(failed) or f'exit {returncode}'})"
    ours = [d for d in warnings_only(diagnostics) if d.obj in objects]
    progress(f"build {arch.name} {step}: {state}, {len(ours)} warning(s) in {duration:.1f} s")
    return result


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
    """Tree-relative files OBJ was built from (its .cmd file), None if never built."""
    directory, _, name = obj.rpartition("/")
    cmd = build_dir / directory / f".{name}.cmd"
    try:
        text = cmd.read_text(errors="replace")
    except FileNotFoundError:
        return None
    deps: set[str] = set()
    for word in re.findall(r"[^\s\\:=]+\.[chS]\b", text):
        for root in roots:
            prefix = str(root).rstrip("/") + "/"
            if word.startswith(prefix):
                deps.add(word[len(prefix):])
                break
        else:
            deps.add(word)
    return deps


# -- base results, reused while base and config stay the same -------------------------------


def _diag_from(data: Mapping[str, Any]) -> Diagnostic:
    return Diagnostic(data["file"], data["line"], data["column"], data["severity"],
                      data["text"], data["flag"], tuple(data["detail"]),
                      tuple(data["context"]), data["obj"], data.get("tool", ""))


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
        return [_diag_from(d) for o in objects for d in self.objects.get(o, {}).get(
            "diagnostics", [])]

    def sparse_diagnostics(self, objects: Iterable[str]) -> list[Diagnostic]:
        return [_diag_from(d) for o in objects for d in self.sparse.get(o, [])]

    def failed(self, objects: Iterable[str]) -> list[str]:
        return [o for o in objects if o in self.objects and not self.objects[o]["ok"]]


def base_key(setup: ArchSetup, worktree: Path, base: str) -> str:
    text = repr((base, setup.stamp, setup.toolchain, WARN_FLAGS, SPARSE_FLAGS, str(worktree)))
    return hashlib.sha256(text.encode()).hexdigest()


# -- the stage ------------------------------------------------------------------------------


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
    proc = run(["git", "-C", str(worktree), "ls-tree", "-r", "--name-only", commit, "--",
                *[sources[o] for o in objects]], check=False)
    present = set(proc.stdout.split())
    return tuple(o for o in objects if sources[o] in present)


def run_build(ctx: Context, tree: Tree, applied: ApplyResult, options: BuildOptions,
              callers: Mapping[str, Sequence[str]] | None = None) -> Stage:
    """Configure, plan, build (base, per patch, head, sparse) and report, as one Stage."""
    with stopwatch() as took:
        worktree = applied.worktree
        ensure_worktree(tree, worktree, applied.head)
        plan = make_plan(worktree, applied, ctx.config.api.family, callers)
        progress(f"build: {len(plan.targets)} file(s) to compile on "
                 f"{', '.join(a.name for a in options.arches)}")
        setups = [configure(ctx.cache, worktree, arch, ctx.out, plan.targets)
                  for arch in options.arches]
        cacheable = not any(KBUILD_FILES_RE.search(p) or p.startswith("scripts/")
                            for files in plan.patch_files for p in files)
        runs = [ArchRun(s, BaseCache.load(s.build_dir, base_key(s, worktree, applied.base)),
                        ResultCache(s.build_dir, cacheable)) for s in setups]
        try:
            execute(worktree, applied, plan, runs, options)
        finally:
            checkout(worktree, applied.head)
            for arch_run in runs:
                arch_run.cache.save()
                arch_run.results.save()
    return summarise(ctx, applied, plan, runs, options, took[0])


def execute(worktree: Path, applied: ApplyResult, plan: Plan, runs: Sequence[ArchRun],
            options: BuildOptions) -> None:
    """Build the base, every patch (or only the head) and sparse, arch after arch per commit
    so the worktree is checked out once per commit."""
    touched_objects = {t.obj for t in plan.targets if t.why.startswith("touched")}
    for arch_run in runs:
        objects = arch_run.setup.objects
        arch_run.base_objects = sources_at(worktree, applied.base, objects, plan.sources)
        if options.sparse and arch_run.setup.arch.name == SPARSE_ARCH:
            arch_run.sparse_objects = tuple(o for o in objects if o in touched_objects)
    if options.base:
        build_base(worktree, applied.base, runs)
    steps: list[tuple[str, str, frozenset[str] | None]] = []
    if options.bisect and applied.patches:
        steps = [(f"patch-{p.index}", p.commit, files)
                 for p, files in zip(applied.patches, plan.patch_files, strict=True)]
        last = steps[-1]
        steps[-1] = (last[0], last[1], None)
    else:
        steps = [("head", applied.head, None)]
    roots = (worktree,)
    for step, commit, files in steps:
        checkout(worktree, commit)
        for arch_run in runs:
            setup = arch_run.setup
            chosen = list(setup.objects) if files is None else affected_objects(
                setup.build_dir, setup.objects, files, (*roots, setup.build_dir),
                plan.sources)
            if chosen:
                arch_run.steps.append(build_objects(setup, worktree, commit, step, chosen,
                                                    results=arch_run.results))
    for arch_run in runs:
        broken = set(arch_run.steps[-1].failed) if arch_run.steps else set()
        checkable = [o for o in arch_run.sparse_objects if o not in broken]
        if checkable:
            arch_run.sparse_head = build_objects(arch_run.setup, worktree, applied.head,
                                                 "sparse-head", checkable, SPARSE_FLAGS,
                                                 remove=False, results=arch_run.results)


def build_base(worktree: Path, base: str, runs: Sequence[ArchRun]) -> None:
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
    for arch_run in runs:
        todo = missing[id(arch_run)]
        if todo:
            result = build_objects(arch_run.setup, worktree, base, "base", todo,
                                   results=arch_run.results)
            arch_run.cache.record(result)
            arch_run.base_step = result
        if sparse_missing[id(arch_run)]:
            result = build_objects(arch_run.setup, worktree, base, "sparse-base",
                                   sparse_missing[id(arch_run)], SPARSE_FLAGS, remove=False,
                                   results=arch_run.results)
            arch_run.cache.record_sparse(result)
        arch_run.cache.save()


# -- results --------------------------------------------------------------------------------


def _lines(diagnostics: Iterable[Diagnostic], limit: int = MAX_LINES) -> list[str]:
    lines = [text for d in diagnostics for text in d.render()]
    return lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit
                            else [])


def new_failures(base: BaseCache, result: StepResult) -> list[str]:
    """Objects that fail in RESULT but built at the base (or did not exist there)."""
    already = set(base.failed(result.objects))
    return [o for o in result.failed if o not in already]


def step_check(arch_run: ArchRun, result: StepResult, subject: str,
               compare: bool) -> tuple[Check, list[Diagnostic]]:
    """A check for one step: failed objects and new warnings (vs the base) fail it."""
    mine = [d for d in result.diagnostics if d.obj in result.objects and d.tool != "sparse"]
    new: list[Diagnostic] = []
    if compare:
        new = new_warnings(arch_run.cache.diagnostics(result.objects), warnings_only(mine))
    errors = errors_only(result.diagnostics)
    name = f"{arch_run.setup.arch.name} {result.step}"
    status: Status = "pass"
    broken = new_failures(arch_run.cache, result)
    if broken or (not result.ok and not result.failed):
        status = "fail"
        summary = (f"{subject} breaks the build on {arch_run.setup.arch.name}: "
                   f"{', '.join(broken) or 'make failed'}")
    elif not result.ok:
        status = "warn"
        summary = (f"{subject}: {', '.join(result.failed)} still fail(s) on "
                   f"{arch_run.setup.arch.name}, as at the base")
    elif new:
        status = "fail"
        summary = f"{subject}: {len(new)} new warning(s) on {arch_run.setup.arch.name}"
    else:
        summary = (f"{subject}: {len(result.objects)} object(s) built, "
                   f"{len(warnings_only(mine))} warning(s), none new" if compare else
                   f"{subject}: {len(result.objects)} object(s) built")
    fixed = fixed_warnings(arch_run.cache.diagnostics(result.objects), mine) if compare else []
    data = {"commit": result.commit, "objects": list(result.objects),
            "reused": list(result.reused), "failed": list(result.failed),
            "errors": _lines(errors),
            "warnings": [d.headline() for d in warnings_only(mine)],
            "new_warnings": format_0day(warnings_only(mine), new) if new else [],
            "fixed_warnings": [d.headline() for d in fixed]}
    return Check(name, status, summary, result.duration_s, result.log,
                 result.reproducer if status != "pass" else None, data), new


def summarise(ctx: Context, applied: ApplyResult, plan: Plan, runs: Sequence[ArchRun],
              options: BuildOptions, duration: float) -> Stage:
    checks: list[Check] = []
    subjects = {f"patch-{p.index}": f"patch {p.index}/{len(applied.patches)} '{p.subject}'"
                for p in applied.patches}
    subjects["head"] = "the series"
    first_bad: dict[str, str] = {}
    for arch_run in runs:
        checks.append(config_check(arch_run.setup))
        if options.base:
            checks.append(base_check(arch_run))
        for result in arch_run.steps:
            check, _ = step_check(arch_run, result, subjects.get(result.step, result.step),
                                  options.base)
            checks.append(check)
            breaks = new_failures(arch_run.cache, result) or (not result.ok and not result.failed)
            if breaks and arch_run.setup.arch.name not in first_bad:
                first_bad[arch_run.setup.arch.name] = subjects.get(result.step, result.step)
        if arch_run.sparse_head is not None:
            checks.append(sparse_check(arch_run, options.base))
    coverage = coverage_matrix(plan, runs)
    checks.append(coverage_check(plan, coverage, len(runs) < len(ARCHES)))
    if options.bisect and applied.patches:
        checks.append(bisect_check(first_bad, runs))
    data = {
        "base": applied.base, "head": applied.head, "worktree": str(applied.worktree),
        "files": [asdict(t) for t in plan.targets],
        "skipped": [{"file": f, "reason": r} for f, r in plan.skipped],
        "functions": dict(plan.functions),
        "headers": header_coverage(plan, runs, applied.worktree),
        "coverage": coverage, "arches": {r.setup.arch.name: arch_data(r) for r in runs},
        "first_bad": first_bad,
    }
    for arch_run in runs:
        write_metadata(arch_run, applied, checks)
    stage = stage_from_checks("build", checks, duration, data=data,
                              reproducer=f"kseries build --arch "
                                         f"{' --arch '.join(r.setup.arch.name for r in runs)}")
    return stage if stage.status != "pass" else Stage(
        stage.name, "pass", pass_summary(plan, runs, applied, options), duration, stage.checks,
        None, stage.reproducer, stage.data)


def pass_summary(plan: Plan, runs: Sequence[ArchRun], applied: ApplyResult,
                 options: BuildOptions) -> str:
    objects = sum(len(r.setup.objects) for r in runs)
    parts = [f"{len(plan.targets)} file(s), {objects} object build(s) on {len(runs)} arch(es)"]
    if options.bisect and applied.patches:
        parts.append(f"all {len(applied.patches)} patches build (bisectable)")
    parts.append("0 new warnings" if options.base else "no base comparison")
    return ", ".join(parts)


def config_check(setup: ArchSetup) -> Check:
    name = f"{setup.arch.name} config"
    fragments = ", ".join(f.name for f in setup.fragments)
    data = {"defconfig": setup.arch.defconfig, "fragments": [str(f) for f in setup.fragments],
            "config": str(setup.out_dir / "config"),
            "problems": [asdict(p) for p in setup.problems]}
    if setup.problems:
        first = setup.problems[0]
        more = f" (+{len(setup.problems) - 1} more)" if len(setup.problems) > 1 else ""
        return Check(name, "fail", f"{setup.arch.name}: {first}{more}", setup.duration_s,
                     str(setup.out_dir / "config.log"), None, data)
    return Check(name, "pass", f"{setup.arch.defconfig} + {fragments}: every fragment "
                 "symbol has its value", setup.duration_s, str(setup.out_dir / "config.log"),
                 None, data)


def base_check(arch_run: ArchRun) -> Check:
    name = f"{arch_run.setup.arch.name} base"
    objects = arch_run.base_objects
    failed = arch_run.cache.failed(objects)
    warnings = warnings_only(arch_run.cache.diagnostics(objects))
    how = "reused" if arch_run.base_reused else "built"
    step = arch_run.base_step
    took = step.duration_s if step is not None else 0.0
    log = step.log if step is not None else None
    data = {"objects": list(objects), "failed": failed, "reused": arch_run.base_reused,
            "warnings": [d.headline() for d in warnings]}
    if failed:
        return Check(name, "warn", f"{', '.join(failed)} already fail(s) to build at the base "
                     f"on {arch_run.setup.arch.name}", took, log, None, data)
    return Check(name, "pass", f"base: {len(objects)} object(s) {how}, {len(warnings)} "
                 "warning(s)", took, log, None, data)


def sparse_check(arch_run: ArchRun, compare: bool) -> Check:
    head = arch_run.sparse_head
    assert head is not None
    mine = [d for d in head.diagnostics if d.obj in head.objects and d.tool == "sparse"]
    base = arch_run.cache.sparse_diagnostics(head.objects)
    new = new_warnings(base, warnings_only(mine)) if compare else []
    data = {"objects": list(head.objects), "warnings": [d.headline() for d in mine],
            "new_warnings": format_0day(warnings_only(mine), new) if new else [],
            "fixed": [d.headline() for d in fixed_warnings(base, mine)] if compare else []}
    name = f"{arch_run.setup.arch.name} sparse"
    if not head.ok or errors_only(mine):
        return Check(name, "fail", f"sparse failed on {', '.join(head.objects)}",
                     head.duration_s, head.log, head.reproducer, data)
    if new:
        return Check(name, "fail", f"sparse: {len(new)} new warning(s): {new[0].headline()}",
                     head.duration_s, head.log, head.reproducer, data)
    return Check(name, "pass", f"sparse (C=2) on {len(head.objects)} touched file(s): "
                 f"{len(mine)} warning(s), none new", head.duration_s, head.log, None, data)


def coverage_matrix(plan: Plan, runs: Sequence[ArchRun]) -> dict[str, dict[str, dict[str, str]]]:
    """file -> arch -> {"status": built | not-buildable | failed, "reason": ...}."""
    matrix: dict[str, dict[str, dict[str, str]]] = {}
    for target in plan.targets:
        row: dict[str, dict[str, str]] = {}
        for arch_run in runs:
            cell = arch_run.setup.buildable[target.source]
            if cell.status != "buildable":
                row[arch_run.setup.arch.name] = {"status": cell.status, "reason": cell.reason}
                continue
            broken = [r.step for r in arch_run.steps if target.obj in r.failed]
            entry = {"status": "failed", "reason": f"fails at {', '.join(broken)}"} if broken \
                else {"status": "built", "reason": cell.reason}
            if cell.calls:
                entry["calls"] = cell.calls
            row[arch_run.setup.arch.name] = entry
        matrix[target.source] = row
    return matrix


def coverage_check(plan: Plan, matrix: Mapping[str, Mapping[str, Mapping[str, str]]],
                   some_arches: bool = False) -> Check:
    """Every file built on at least one arch. With only some arches selected (--arch), a
    file that none of them can build is a warning: another arch may build it."""
    unbuilt = [f for f, row in matrix.items()
               if not any(c["status"] == "built" for c in row.values())]
    failed = [f for f in unbuilt if any(c["status"] == "failed" for c in matrix[f].values())]
    gaps = [f"{f} on {a}" for f, row in matrix.items() for a, c in row.items()
            if "could be" in c.get("reason", "")]
    gaps += [f"{f}: its calls are compiled out wherever it is built" for f, row in matrix.items()
             if any(c.get("calls") for c in row.values())
             and not any(c.get("calls") in ("compiled", "unknown") for c in row.values()
                         if c["status"] == "built")]
    data = {"unbuilt": unbuilt, "gaps": gaps}
    if unbuilt:
        status: Status = "warn" if some_arches and not failed else "fail"
        reasons = "; ".join(f"{f}: " + ", ".join(f"{a}: {c['reason']}" for a, c in
                                                 matrix[f].items()) for f in unbuilt[:3])
        where = "on none of the selected arches" if some_arches else "on no arch"
        return Check("coverage", status, f"{len(unbuilt)} file(s) built {where}: {reasons}",
                     data=data)
    if gaps:
        return Check("coverage", "warn", f"coverage gaps: {'; '.join(gaps[:3])}", data=data)
    return Check("coverage", "pass", f"every one of {len(matrix)} file(s) built on at least "
                 "one arch", data=data)


def bisect_check(first_bad: Mapping[str, str], runs: Sequence[ArchRun]) -> Check:
    if first_bad:
        text = "; ".join(f"{arch}: first broken by {what}" for arch, what in first_bad.items())
        return Check("bisect", "fail", text, data={"first_bad": dict(first_bad)})
    arches = ", ".join(r.setup.arch.name for r in runs)
    return Check("bisect", "pass", f"every patch builds on {arches}", data={"first_bad": {}})


def header_coverage(plan: Plan, runs: Sequence[ArchRun], worktree: Path
                    ) -> dict[str, dict[str, list[str]]]:
    """Touched header -> arch -> built objects that include it (from kbuild's .cmd files)."""
    result: dict[str, dict[str, list[str]]] = {}
    for header in plan.headers:
        result[header] = {}
        for arch_run in runs:
            build_dir = arch_run.setup.build_dir
            result[header][arch_run.setup.arch.name] = [
                o for o in arch_run.setup.objects
                if header in (object_deps(build_dir, o, (worktree, build_dir)) or set())]
    return result


def arch_data(arch_run: ArchRun) -> dict[str, Any]:
    setup = arch_run.setup
    return {
        "toolchain": setup.toolchain, "defconfig": setup.arch.defconfig,
        "build_dir": str(setup.build_dir), "config": str(setup.out_dir / "config"),
        "objects": list(setup.objects), "base_reused": arch_run.base_reused,
        "steps": [{"step": r.step, "commit": r.commit, "objects": list(r.objects),
                   "failed": list(r.failed), "duration_s": r.duration_s, "log": r.log,
                   "warnings": len(warnings_only(r.diagnostics)),
                   "errors": len(errors_only(r.diagnostics))} for r in arch_run.steps],
    }


def write_metadata(arch_run: ArchRun, applied: ApplyResult, checks: Sequence[Check]) -> Path:
    """<out>/build/<arch>/metadata.json, modelled on tuxmake's."""
    setup = arch_run.setup
    mine = [c for c in checks if c.name.startswith(f"{setup.arch.name} ")]
    targets = {c.name.split(" ", 1)[1]: {"status": c.status.upper(), "duration": c.duration_s,
                                         "log": c.log} for c in mine}
    warnings = sum(len(warnings_only(r.diagnostics)) for r in arch_run.steps)
    errors = sum(len(errors_only(r.diagnostics)) for r in arch_run.steps)
    status = worst([c.status for c in mine])
    metadata = {
        "build": {"target_arch": setup.arch.name, "kernel_arch": setup.arch.kernel_arch,
                  "toolchain": "gcc", "cross_compile": setup.arch.cross_compile,
                  "kconfig": setup.arch.defconfig,
                  "kconfig_add": [str(f) for f in setup.fragments], "make_variables":
                      {"W": "1"}, "build_dir": str(setup.build_dir),
                  "base": applied.base, "head": applied.head},
        "toolchain": {"version": setup.toolchain},
        "results": {"status": "FAIL" if status == "fail" else "PASS", "targets": targets,
                    "warnings": warnings, "errors": errors,
                    "duration": {"build": round(sum(c.duration_s for c in mine), 3)}},
        "objects": {o: {r.step: ("FAIL" if o in r.failed else "PASS")
                        for r in arch_run.steps if o in r.objects}
                    for o in setup.objects},
        "config": str(setup.out_dir / "config"),
    }
    path = setup.out_dir / "metadata.json"
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    return path


# -- entry points ---------------------------------------------------------------------------


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
    tools=tools_for, render=render)


# -- benchmark ------------------------------------------------------------------------------


BENCH_BOX_S = 120.0
OBJECT_LINE_RE = re.compile(r"echo '  (?:CC|AS)(?: \[M\])? +(\S+\.o)'")


@contextmanager
def _ccache_dir(path: Path | None) -> Iterator[None]:
    """Point ccache (in every make we start) at PATH for a while; bench only."""
    old = os.environ.get("CCACHE_DIR")
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        os.environ["CCACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CCACHE_DIR", None)
        else:
            os.environ["CCACHE_DIR"] = old


def _timed_build(ctx: Context, tree: Tree, applied: ApplyResult, options: BuildOptions
                 ) -> tuple[float, Stage]:
    start = time.monotonic()
    stage = run_build(ctx, tree, applied, options)
    return round(time.monotonic() - start, 1), stage


def revised_series(worktree: Path, applied: ApplyResult, out: Path) -> Path:
    """A 'v3': the series with one more line of code in its last patch, as an mbox."""
    last = applied.patches[-1]
    checkout(worktree, last.commit)
    changed = next(p for p in diff_changes(worktree, f"{last.commit}^", last.commit)
                   if p.path.endswith(".c"))
    source = worktree / changed.path
    source.write_text(source.read_text() + "\nstatic int __maybe_unused kseries_bench_v3;\n")
    identity = ["-c", "user.name=kseries bench", "-c", "user.email=bench@localhost"]
    run(["git", *g.SAFE_CONFIG, *identity, "-C", str(worktree), "commit", "-q", "-a",
         "--amend", "--no-edit"], what="git commit --amend (bench v3)")
    mbox = g.git(worktree, "format-patch", "--cover-letter", "--thread", "-v3", "--stdout",
                 f"--base={applied.base}", f"{applied.base}..HEAD")
    mbox = mbox.replace("*** SUBJECT HERE ***", "kseries bench: a new revision").replace(
        "*** BLURB HERE ***", "One more line of code in the last patch.")
    checkout(worktree, applied.head)
    out.write_text(mbox + "\n")
    return out


def naive_arch(arch: Arch, worktree: Path, build_dir: Path, box_s: float) -> dict[str, Any]:
    """The naive bot for ARCH: defconfig + fragments, then a full vmlinux, time-boxed.

    Measured: config and prepare, then `make vmlinux` for BOX_S seconds (objects per second
    with an empty ccache), the same objects deleted and made again from ccache (the warm
    rate), and the number of objects the whole vmlinux needs (make -n). The full build is
    extrapolated."""
    start = time.monotonic()
    merge_config(worktree, build_dir, arch, build_fragments(arch))
    config_s = time.monotonic() - start
    start = time.monotonic()
    run_make(make_command(arch, worktree, build_dir, "prepare", extra=WARN_FLAGS))
    prepare_s = time.monotonic() - start
    _, dry = run_make(make_command(arch, worktree, build_dir, "vmlinux",
                                   extra=(*WARN_FLAGS, "-n", "-k")))
    total = len(set(OBJECT_LINE_RE.findall(dry)))
    built, cold_s = _boxed_vmlinux(arch, worktree, build_dir, box_s)
    again, warm_s = _rebuild_from_ccache(arch, worktree, build_dir, built)
    cold_rate = len(built) / cold_s if built else 0.0
    warm_rate = len(again) / warm_s if again else 0.0
    return {
        "arch": arch.name, "objects_total": total, "config_s": round(config_s, 1),
        "prepare_s": round(prepare_s, 1), "box_s": round(cold_s, 1),
        "objects_in_box_cold": len(built), "objects_per_s_cold": round(cold_rate, 2),
        "objects_rebuilt_from_ccache": len(again), "rebuild_s": round(warm_s, 1),
        "objects_per_s_warm": round(warm_rate, 2),
        "extrapolated_cold_s": round(config_s + prepare_s + total / cold_rate, 1)
        if cold_rate else None,
        "extrapolated_warm_s": round(total / warm_rate, 1) if warm_rate else None,
    }


def _objects_in(build_dir: Path) -> set[str]:
    skip = ("scripts/", "tools/", "arch/x86/tools/", "arch/x86/boot/")
    found = {str(p.relative_to(build_dir)) for p in build_dir.rglob("*.o")}
    return {o for o in found if not o.startswith(skip)}


def _boxed_vmlinux(arch: Arch, worktree: Path, build_dir: Path, box_s: float
                   ) -> tuple[set[str], float]:
    """Run make vmlinux for at most BOX_S seconds; the objects it made and the time taken."""
    before = _objects_in(build_dir)
    cmd = make_command(arch, worktree, build_dir, "vmlinux", extra=WARN_FLAGS)
    args = [require_program(cmd[0]), *cmd[1:]]
    start = time.monotonic()
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True) as proc:
        while proc.poll() is None and time.monotonic() - start < box_s:
            time.sleep(1.0)
        took = time.monotonic() - start
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    return _objects_in(build_dir) - before, took


def _rebuild_from_ccache(arch: Arch, worktree: Path, build_dir: Path, objects: set[str]
                         ) -> tuple[set[str], float]:
    """Delete OBJECTS and make them again (every compile a ccache hit): the warm rate."""
    for obj in objects:
        (build_dir / obj).unlink(missing_ok=True)
    start = time.monotonic()
    run_make(make_command(arch, worktree, build_dir, *sorted(objects),
                          extra=(*WARN_FLAGS, "-k")))
    took = time.monotonic() - start
    return {o for o in objects if (build_dir / o).exists()}, took


def bench_build(ctx: Context) -> dict[str, Any]:
    """make bench: the build stage cold, warm and for a new revision, against the naive bot
    (one full defconfig vmlinux per arch, time-boxed and extrapolated) and the floor (one
    config + prepare + the objects once per arch, from the cold run's own steps)."""
    box_s = float(os.environ.get("KSERIES_BENCH_BOX_S", BENCH_BOX_S))
    tree = ctx.tree()
    options = BuildOptions(tuple(get_arch(a) for a in ctx.config.arches))
    for arch in options.arches:
        check_toolchain(arch)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=ctx.cache) as scratch_name:
        scratch = Path(scratch_name)
        bench_ctx = replace(ctx, cache=scratch / "cache",
                            options=replace(ctx.options, out=scratch / "out"))
        applied = apply_series(tree, ctx.series(), bench_ctx.cache, ctx.config.name,
                               ctx.revision_name)
        try:
            with _ccache_dir(scratch / "ccache"):
                cold_s, cold = _timed_build(bench_ctx, tree, applied, options)
                warm_s, _ = _timed_build(bench_ctx, tree, applied, options)
                v3 = revised_series(applied.worktree, applied, scratch / "v3.mbx")
                applied3 = apply_series(tree, read_series(v3), bench_ctx.cache,
                                        ctx.config.name, "bench-v3")
                revision_s, _ = _timed_build(bench_ctx, tree, applied3, options)
            with _ccache_dir(scratch / "ccache-naive"):
                naive = [naive_arch(arch, applied.worktree, scratch / f"naive-{arch.name}",
                                    box_s) for arch in options.arches]
        finally:
            remove_worktree(tree, applied.worktree)
            g.git(tree.path, "branch", "-D", "-q", scratch_branch(ctx.config.name, "bench-v3"),
                  check=False)
    return bench_figures(cold, cold_s, warm_s, revision_s, naive, box_s)


def bench_figures(cold: Stage, cold_s: float, warm_s: float, revision_s: float,
                  naive: Sequence[Mapping[str, Any]], box_s: float) -> dict[str, Any]:
    arches = cold.data.get("arches", {})
    config_s = sum(c.duration_s for c in cold.checks if c.name.endswith(" config"))
    base_s = sum(c.duration_s for c in cold.checks if c.name.endswith(" base"))
    floor_s = round(config_s + base_s, 1)
    naive_cold = sum(n["extrapolated_cold_s"] or 0.0 for n in naive)
    naive_warm = sum(n["extrapolated_warm_s"] or 0.0 for n in naive)
    return {
        "status": cold.status,
        "arches": ", ".join(arches),
        "targeted_cold_s": cold_s, "targeted_warm_s": warm_s,
        "targeted_new_revision_warm_s": revision_s,
        "floor_s (config + prepare + objects once, per arch, from the cold run)": floor_s,
        "ratio_targeted_cold_vs_floor": round(cold_s / floor_s, 2) if floor_s else None,
        "naive_cold_s (extrapolated)": round(naive_cold, 1),
        "naive_warm_s (extrapolated, all ccache hits)": round(naive_warm, 1),
        "ratio_naive_vs_targeted_cold": round(naive_cold / cold_s, 1) if cold_s else None,
        "ratio_naive_vs_floor (both build each arch's config once, the naive bot all of it)":
            round(naive_cold / floor_s, 1) if floor_s else None,
        "ratio_naive_vs_targeted_warm": round(naive_warm / warm_s, 1) if warm_s else None,
        "naive_box_s": box_s,
        "naive_per_arch": list(naive),
        "note": "naive = one full defconfig+fragments vmlinux per arch (head only, no base, "
                "no per-patch builds); built for a fixed time, then extrapolated from "
                "objects/s to the object count of `make -n vmlinux`",
    }


