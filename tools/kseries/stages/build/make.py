"""One make run: build some objects on one arch at one commit and collect what failed and
every diagnostic. An object whose inputs (command, source, every included header, .config)
are the same as in an earlier build is not built again: what that build printed is reused."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kseries.core.context import progress
from kseries.core.proc import command_line, run
from kseries.kernel.arches import Arch, make_command
from kseries.kernel.kcmd import read_cmd
from kseries.kernel.kwarn import Diagnostic, parse_diagnostics, warnings_only
from kseries.stages.build.coverage import ArchSetup
from kseries.stages.build.options import MAKE_FLAGS, WARN_FLAGS

RESULTS_CACHE = ".kseries-results.json"
RESULTS_KEPT = 4000


@dataclass(frozen=True)
class CompileSetup(ArchSetup):
    """An arch's setup with the environment its compiles get (Context.compile_env: a shared
    ccache, distcc). The build stage's run makes one of each ArchSetup; the steps pass their
    setup through to build_objects unchanged, which reads it here."""

    compile_env: Mapping[str, str] = field(default_factory=dict, hash=False)


def with_compile_env(setup: ArchSetup, env: Mapping[str, str]) -> CompileSetup:
    values = {f.name: getattr(setup, f.name) for f in fields(ArchSetup)}
    return CompileSetup(**values, compile_env=env)


def compile_env_of(setup: ArchSetup) -> Mapping[str, str]:
    return setup.compile_env if isinstance(setup, CompileSetup) else {}


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


def run_make(cmd: Sequence[str], log: Path, stop: threading.Event | None = None,
             env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run make with stdout and stderr as one stream appended to LOG (a log reads as a
    terminal would show it, so each warning follows its 'CC' line), with ENV on top of our
    environment (the compile environment). proc.run gives it LC_ALL=C (gcc's quotes stay
    plain) and kills a make that hangs past make's limit, or once STOP is set (arches built
    side by side, execute.py)."""
    proc = run(cmd, log=log, check=False, stop=stop, env=env)
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
        cmd = read_cmd(self.build_dir, obj)
        if cmd is None:
            return None
        digest = hashlib.sha256(repr((obj, tuple(flags), self.config_sha, cmd.command)).encode())
        for dep in cmd.deps:
            path = Path(dep) if dep.startswith("/") else self.build_dir / dep
            content = self._file_hash(path)
            if content is None:
                return None
            digest.update(f"{dep}\0{content}\0".encode())
        if cmd.source is None or (content := self._file_hash(Path(cmd.source))) is None:
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
        return [diagnostic_from(d) for d in self.entries[key]]

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
                  results: ResultCache | None = None,
                  stop: threading.Event | None = None,
                  env: Mapping[str, str] | None = None) -> StepResult:
    """make the OBJECTS and collect what failed and every diagnostic. With REMOVE the objects
    are deleted first, so that every warning is printed again (ccache makes rebuilding an
    unchanged object cheap); sparse (C=2) checks up-to-date objects without that. Objects
    RESULTS knows (same inputs as an earlier build) are not built again. make runs with ENV,
    by default SETUP's compile environment."""
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
    log = setup.out_dir / f"{step}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"# reused, same inputs as an earlier build: {' '.join(reused)}\n"
                   if reused else "")
    compile_env = compile_env_of(setup) if env is None else env
    returncode, output = run_make(cmd, log, stop, compile_env) if todo else (0, "")
    duration = round(time.monotonic() - start, 3)
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


def diagnostic_from(data: Mapping[str, Any]) -> Diagnostic:
    """A Diagnostic from its asdict() form, as the caches store it."""
    return Diagnostic(data["file"], data["line"], data["column"], data["severity"],
                      data["text"], data["flag"], tuple(data["detail"]),
                      tuple(data["context"]), data["obj"], data.get("tool", ""))
