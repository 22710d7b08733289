"""Compiler, kernel-doc, objtool and sparse diagnostics from a kernel build log, compared as sets.

A warning's identity is (file, text, flag) with line and column numbers normalised away, so a
warning that moves is not new, and a warning that replaces another one is new even though the
count stays the same. Several instances of one key in a .c file are counted (one more is new);
a header's warning counts once per object that includes it, so it is compared as a set.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

DIAG_RE = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?:(?P<line>\d+):)?(?:(?P<col>\d+):)?\s*"
    r"(?P<sev>warning|error|fatal error):\s*(?P<text>.*)$")
FLAG_RE = re.compile(r"\s*\[(?P<flag>-W[^\]]+)\]$")
LOCATION_RE = re.compile(r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::(?P<col>\d+))?:(?P<text>.*)$")
CONTEXT_RE = re.compile(r"^(?:In file included from |\s+from |.*: In (?:function|member "
                        r"function|static function) |.*: At top level:)")
SOURCE_LINE_RE = re.compile(r"^\s*(?:\d+\s*)?\|")
QUIET_RE = re.compile(r"^\s+(?P<tool>CC|CC \[M\]|CHECK|AS|AS \[M\])\s+(?P<path>\S+)$")
EMBEDDED_LOCATION_RE = re.compile(r"(\S+?\.[chS]):\d+(?::\d+)?")


@dataclass(frozen=True)
class Diagnostic:
    """One warning or error, its location normalised to a tree-relative path."""

    file: str
    line: int | None
    column: int | None
    severity: str
    text: str
    flag: str
    detail: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    obj: str = ""
    tool: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """(file, text, flag): what makes two warnings the same warning across builds."""
        extra = [d.split(":", 3)[-1].strip() for d in self.detail if LOCATION_RE.match(d)]
        text = " | ".join([self.text, *extra])
        return self.file, EMBEDDED_LOCATION_RE.sub(r"\1", text), self.flag

    @property
    def location(self) -> str:
        parts = [self.file] + [str(n) for n in (self.line, self.column) if n is not None]
        return ":".join(parts)

    def headline(self) -> str:
        flag = f" [{self.flag}]" if self.flag else ""
        return f"{self.location}: {self.severity}: {self.text}{flag}"

    def render(self) -> list[str]:
        return [*self.context, self.headline(), *self.detail]


def relative_path(path: str, roots: Sequence[Path]) -> str:
    """PATH relative to the first of ROOTS (srctree, build dir) it lies under."""
    for root in roots:
        prefix = str(root).rstrip("/") + "/"
        if path.startswith(prefix):
            return path[len(prefix):]
    return path.removeprefix("./")


def _normalise_line(line: str, roots: Sequence[Path]) -> str:
    for root in roots:
        line = line.replace(str(root).rstrip("/") + "/", "")
    return line


def object_of(path: str) -> str:
    """mm/foo.c or mm/foo.o -> mm/foo.o (the object a quiet 'CC'/'CHECK' line is about)."""
    stem, _, _ = path.rpartition(".")
    return f"{stem}.o" if stem else path


def parse_diagnostics(output: str, roots: Sequence[Path] = ()) -> list[Diagnostic]:
    """Every warning and error in a make log, with paths relative to ROOTS."""
    diagnostics: list[Diagnostic] = []
    context: list[str] = []
    current: Diagnostic | None = None
    obj = tool = ""
    for raw in output.splitlines():
        line = _normalise_line(raw.rstrip(), roots)
        if quiet := QUIET_RE.match(line):
            if current is not None:
                diagnostics.append(current)
            obj = object_of(quiet.group("path"))
            tool = "sparse" if quiet.group("tool") == "CHECK" else "cc"
            current = None
            continue
        if match := DIAG_RE.match(line):
            if match.group("file").startswith("make"):
                current = None
                continue
            if current is not None:
                diagnostics.append(current)
            current = _diagnostic(match, tuple(context), obj, tool)
            context = []
            continue
        if CONTEXT_RE.match(line):
            if current is not None:
                diagnostics.append(current)
                current = None
            context.append(line)
            continue
        if current is not None and (SOURCE_LINE_RE.match(line) or LOCATION_RE.match(line)):
            current = replace(current, detail=(*current.detail, line))
            continue
        if current is not None:
            diagnostics.append(current)
            current = None
        context = []
    if current is not None:
        diagnostics.append(current)
    return diagnostics


def _diagnostic(match: re.Match[str], context: tuple[str, ...], obj: str,
                tool: str) -> Diagnostic:
    text = match.group("text").strip()
    flag = ""
    if found := FLAG_RE.search(text):
        flag = found.group("flag").replace("-Werror=", "-W")
        text = text[:found.start()].rstrip()
    severity = "error" if "error" in match.group("sev") else "warning"
    line = int(match.group("line")) if match.group("line") else None
    column = int(match.group("col")) if match.group("col") else None
    return Diagnostic(match.group("file"), line, column, severity, text, flag, (), context, obj,
                      tool)


def warnings_only(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == "warning"]


def errors_only(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == "error"]


def counted(diagnostics: Iterable[Diagnostic]) -> Counter[tuple[str, str, str]]:
    """Instances per key: summed over objects for .c files, the most in one object for headers."""
    per_object: dict[str, Counter[tuple[str, str, str]]] = {}
    for diag in diagnostics:
        per_object.setdefault(diag.obj, Counter())[diag.key] += 1
    total: Counter[tuple[str, str, str]] = Counter()
    for counts in per_object.values():
        for key, number in counts.items():
            if key[0].endswith(".c"):
                total[key] += number
            else:
                total[key] = max(total[key], number)
    return total


def new_keys(base: Iterable[Diagnostic], head: Iterable[Diagnostic]
             ) -> set[tuple[str, str, str]]:
    """Keys of warnings that HEAD has more often than BASE (new, or one more instance)."""
    before, after = counted(base), counted(head)
    return {key for key, number in after.items() if number > before.get(key, 0)}


def new_warnings(base: Iterable[Diagnostic], head: Sequence[Diagnostic]) -> list[Diagnostic]:
    """HEAD's warnings whose key is new compared with BASE (every instance of such a key)."""
    keys = new_keys(base, head)
    return _unique([d for d in head if d.key in keys])


def fixed_warnings(base: Sequence[Diagnostic], head: Iterable[Diagnostic]) -> list[Diagnostic]:
    """BASE's warnings whose key HEAD no longer has."""
    after = {d.key for d in head}
    return _unique([d for d in base if d.key not in after])


def _unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Drop repeats of the same header warning reported by several objects."""
    seen: set[tuple[str, int | None, int | None, str, str]] = set()
    kept = []
    for diag in diagnostics:
        ident = (diag.file, diag.line, diag.column, diag.text, diag.flag)
        if ident not in seen:
            seen.add(ident)
            kept.append(diag)
    return kept


def format_0day(head: Sequence[Diagnostic], new: Sequence[Diagnostic]) -> list[str]:
    """All warnings, new ones prefixed by '>>' (as the kernel test robot writes them)."""
    new_keys_ = {d.key for d in new}
    lines = ["All warnings (new ones prefixed by >>):", ""]
    for diag in _unique(head):
        marker = ">> " if diag.key in new_keys_ else "   "
        lines.extend(f"   {text}" for text in diag.context)
        lines.append(f"{marker}{diag.headline()}")
        lines.extend(f"   {text}" for text in diag.detail)
    return lines
