"""Running external programs: argument lists only, a time limit on every call, errors as
one line.

Each program runs in its own process group (session), so a timeout, Ctrl-C or any other
exception in kseries kills the whole group with SIGKILL: no make, compiler or QEMU
grandchild outlives the call. The child gets LC_ALL=C, so the output we parse is not
localised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kseries.core import events
from kseries.core.errors import InfraError, KseriesError

# Debian package that provides each external program we call that is not per arch (the
# compilers, binutils and QEMU of each arch are in kernel/arches.toml).
PACKAGE_OF: Mapping[str, str] = {
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "tar": "tar",
    "xz": "xz-utils",
    "git": "git",
    "perl": "perl",
    "b4": "b4 (pip install b4)",
    "make": "make",
    "ccache": "ccache",
    "sparse": "sparse",
    "spatch": "coccinelle",
    "kexec": "kexec-tools",
    "busybox": "busybox-static",
}

# Seconds a program may run when the caller gives no timeout_s: generous bounds for a
# hung tool, not estimates (a full kernel build with a cold ccache takes well over an hour).
TIMEOUT_S: Mapping[str, float] = {
    "git": 600,
    "b4": 600,
    "make": 3 * 60 * 60,
    "spatch": 30 * 60,
    "apt-get": 30 * 60,
    "dpkg-deb": 10 * 60,
    "tar": 30 * 60,
}
DEFAULT_TIMEOUT_S = 600.0

# A long program (a kernel build, a guest) says what it is doing at least this often.
HEARTBEAT_S = 30.0
# What a heartbeat quotes from a log: kbuild's short lines (the file being built or linked)
# or, failing those, the last line.
KBUILD_LINE_RE = re.compile(r"^\s*(CC|AS|AR|LD|HOSTCC|HOSTLD|OBJCOPY|GEN|UPD|CALL|MODPOST|"
                            r"VDSO\w*|KSYMS|SYSMAP|OBJTOOL|BTF|ZSTD|GZIP|XZ|MKPIGGY|"
                            r"RELOCS|BUILD|CHK|SYNC|WRAP|INSTALL|DTC|LDS|CPP|EXPORTS)\s+\S")
LOG = logging.getLogger("kseries")

# Children parse no localised messages and print no localised quotes.
CHILD_LOCALE = {"LC_ALL": "C", "LANG": "C"}


class ToolTimeout(InfraError):
    """An external program ran past its time limit and was killed with its process group."""


class Stopped(KseriesError):
    """A program was killed because the run it belonged to stopped (its STOP event was set:
    a program beside it failed, or Ctrl-C reached the main thread)."""


# How often a program that may be stopped looks at its stop event.
STOP_POLL_S = 0.5


def require_program(name: str) -> str:
    """Return the full path of NAME or fail naming the package that provides it."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.is_file() else shutil.which(name)
    if found is None:
        package = PACKAGE_OF.get(name, name)
        raise InfraError(f"'{name}' is not installed; install it ({package}) or run 'make setup'")
    return found


def command_line(cmd: Sequence[str | Path], cwd: Path | None = None) -> str:
    """A shell-pasteable form of CMD, for logs and reproducers."""
    text = shlex.join(str(part) for part in cmd)
    return f"cd {shlex.quote(str(cwd))} && {text}" if cwd else text


def default_timeout(program: str) -> float:
    return TIMEOUT_S.get(Path(program).name, DEFAULT_TIMEOUT_S)


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    input_text: str | None = None,
    stdin_file: Path | None = None,
    check: bool = True,
    what: str | None = None,
    log: Path | None = None,
    expected_s: float | None = None,
    heartbeat_s: float = HEARTBEAT_S,
    stop: threading.Event | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run CMD (ENV on top of ours) and return its text output; with CHECK, a failure is a
    one-line KseriesError, and running past TIMEOUT_S (default: per program) a ToolTimeout.

    With LOG, stdout and stderr go to LOG as one stream after a '$ <command line>' line (a log
    reads as a terminal would show it) and come back as stdout; stderr is then empty.
    STDIN_FILE is given to CMD as its stdin byte for byte (mail must not pass through a
    text codec). A run past HEARTBEAT_S prints a progress line every HEARTBEAT_S (with the
    last kbuild line of LOG, and the time left when EXPECTED_S, the last run's, is known);
    every run is a command-start/command-end event (core/events.py). Runs in threads beside
    each other get a STOP event: once it is set, CMD is killed with its process group and
    Stopped is raised (Ctrl-C reaches only the main thread, and CMD has its own session)."""
    args = [str(part) for part in cmd]
    label = what or command_line(args)
    limit = default_timeout(args[0]) if timeout_s is None else timeout_s
    spawn = Spawn((require_program(args[0]), *args[1:]), cwd, child_environment(env),
                  input_text, limit, label, stdin_file, expected_s, heartbeat_s, stop)
    with events.span("command", command=command_line(args, cwd), program=Path(args[0]).name,
                     log=str(log) if log else None) as done:
        proc = spawn.logged(log) if log is not None else spawn.captured()
        done["returncode"] = proc.returncode
    if check and proc.returncode != 0:
        detail = last_line(proc.stderr or proc.stdout)
        raise KseriesError(f"{label} failed (exit {proc.returncode}): {detail}")
    return proc


def child_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, **CHILD_LOCALE, **(env or {})}


@dataclass(frozen=True)
class Spawn:
    """One run of a program in its own process group (see run())."""

    args: tuple[str, ...]
    cwd: Path | None
    env: dict[str, str]
    input_text: str | None
    timeout_s: float
    label: str
    stdin_file: Path | None = None
    expected_s: float | None = None
    heartbeat_s: float = HEARTBEAT_S
    stop: threading.Event | None = None

    def captured(self) -> subprocess.CompletedProcess[str]:
        with self._popen(subprocess.PIPE, subprocess.PIPE) as proc, _group_of(proc):
            try:
                out, err = self._wait(proc, None)
            except subprocess.TimeoutExpired:
                raise self._timed_out(None) from None
        return subprocess.CompletedProcess(list(self.args), proc.returncode, out, err)

    def _wait(self, proc: subprocess.Popen[str], log: Path | None) -> tuple[str, str]:
        """communicate() within the time limit, with a heartbeat line every heartbeat_s."""
        began = time.monotonic()
        beat = began + self.heartbeat_s
        first = True
        while True:
            now = time.monotonic()
            left = self.timeout_s - (now - began)
            if left <= 0:
                raise subprocess.TimeoutExpired(list(self.args), self.timeout_s)
            wait = min(beat - now, left) if self.stop is None else min(beat - now, left,
                                                                        STOP_POLL_S)
            try:
                out, err = proc.communicate(self.input_text if first else None,
                                            timeout=max(wait, 0.01))
                return out or "", err or ""
            except subprocess.TimeoutExpired:
                first = False
                now = time.monotonic()
                if self.stop is not None and self.stop.is_set():
                    raise Stopped(f"{self.label}: stopped, the run it belonged to ended "
                                  "early") from None
                if now >= beat and now - began < self.timeout_s:
                    beat = now + self.heartbeat_s
                    LOG.info(heartbeat(self.label, now - began, self.expected_s, log))

    def logged(self, log: Path) -> subprocess.CompletedProcess[str]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", errors="replace") as stream:
            stream.write(f"$ {command_line(self.args, self.cwd)}\n")
            stream.flush()
            start = stream.tell()
            with self._popen(stream, subprocess.STDOUT) as proc, _group_of(proc):
                try:
                    self._wait(proc, log)
                except subprocess.TimeoutExpired:
                    stream.write(f"\nkseries: killed after {self.timeout_s:g} s\n")
                    raise self._timed_out(log) from None
        with log.open("rb") as stream:
            stream.seek(start)
            output = stream.read().decode(errors="replace")
        return subprocess.CompletedProcess(list(self.args), proc.returncode, output, "")

    def _popen(self, stdout: int | IO[str], stderr: int) -> subprocess.Popen[str]:
        if self.stdin_file is not None:
            with self.stdin_file.open("rb") as stdin:
                return self._spawn(stdin, stdout, stderr)
        return self._spawn(subprocess.DEVNULL if self.input_text is None else subprocess.PIPE,
                           stdout, stderr)

    def _spawn(self, stdin: int | IO[bytes], stdout: int | IO[str],
               stderr: int) -> subprocess.Popen[str]:
        # The child keeps its own copy of a stdin file descriptor: ours may close at once.
        return subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdin=stdin,
                                stdout=stdout, stderr=stderr, text=True, errors="replace",
                                start_new_session=True)

    def _timed_out(self, log: Path | None) -> ToolTimeout:
        """The error for a timeout (_group_of kills the group as it propagates)."""
        where = f"; its output is in {log}" if log else ""
        return ToolTimeout(f"{self.label} timed out after {self.timeout_s:g} s; it was killed "
                           f"with its child processes{where}")


def heartbeat(label: str, elapsed_s: float, expected_s: float | None, log: Path | None) -> str:
    """'<label>: 90 s[, about 60 s left]; now: CC mm/memory_hotplug.o' for a long run."""
    short = label if len(label) <= 80 else label[:77] + "..."
    text = f"{short}: running {elapsed_s:.0f} s"
    if expected_s is not None:
        left = expected_s - elapsed_s
        text += (f", about {left:.0f} s left" if left > 0
                 else f", past the last run's {expected_s:.0f} s")
    last = last_kbuild_line(log) if log is not None else None
    return f"{text}; now: {last}" if last else text


def last_kbuild_line(log: Path, tail_bytes: int = 8192) -> str | None:
    """The last kbuild short line (CC, LD, ...) near the end of LOG, else its last line."""
    try:
        with log.open("rb") as stream:
            stream.seek(max(0, log.stat().st_size - tail_bytes))
            lines = stream.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    lines = [line.strip() for line in lines if line.strip()]
    kbuild = [line for line in lines if KBUILD_LINE_RE.match(line)]
    found = kbuild or lines
    return found[-1][:120] if found else None


@contextlib.contextmanager
def _group_of(proc: subprocess.Popen[str]) -> Iterator[None]:
    """Kill PROC's process group when anything interrupts the wait (timeout, Ctrl-C, ...)."""
    try:
        yield
    except BaseException:
        kill_group(proc)
        raise


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group PROC leads (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def last_line(text: str) -> str:
    """The last non-empty line of TEXT, or a placeholder."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
