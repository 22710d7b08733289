"""kbuild's .cmd files: what make recorded about how it built one target.

For every target, kbuild writes `<dir>/.<name>.cmd` into the build dir: the command it ran
(`savedcmd_<target> := ...`), then fixdep's rewrite of the compiler's dependency list: the
source (`source_<target> := ...`) and one included file per indented line (`deps_<target>
:= \\`), where CONFIG_ dependencies appear as `$(wildcard include/config/...)` lines.
Paths are as make saw them: relative to the build dir, or absolute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_ASSIGNMENT_RE = re.compile(r"(savedcmd|source)_\S+ := (.*)")
# One file of the deps_ list (a $(wildcard ...) line is a config symbol, not a file).
_DEP_RE = re.compile(r"\s+([^\s$\\]+)\s*\\?")


@dataclass(frozen=True)
class KbuildCmd:
    """One .cmd file: the saved command line, the source and the files it included."""

    command: str
    source: str | None
    deps: tuple[str, ...]


def cmd_file(build_dir: Path, target: str) -> Path:
    """Where kbuild keeps the .cmd file of TARGET (a build-dir-relative path like mm/a.o)."""
    directory, _, name = target.rpartition("/")
    return build_dir / directory / f".{name}.cmd"


def read_cmd(build_dir: Path, target: str) -> KbuildCmd | None:
    """The .cmd file of TARGET, None when it was never built."""
    try:
        text = cmd_file(build_dir, target).read_text(errors="replace")
    except FileNotFoundError:
        return None
    return parse_cmd(text)


def parse_cmd(text: str) -> KbuildCmd:
    command, source, deps = "", None, []
    for line in text.splitlines():
        if assignment := _ASSIGNMENT_RE.fullmatch(line):
            if assignment.group(1) == "savedcmd":
                command = assignment.group(2)
            else:
                source = assignment.group(2).strip()
        elif dep := _DEP_RE.fullmatch(line):
            deps.append(dep.group(1))
    return KbuildCmd(command, source, tuple(deps))
