"""The one KTAP parser: kernel test output (Documentation/dev-tools/ktap.rst) as a tree.

KTAP is TAP with nesting: a test's subtests print their own version line ("KTAP version 1",
older "TAP version 13/14") or a "# Subtest: name" line, and their own plan ("1..N"), indented
one level deeper than the parent's result line ("ok|not ok N [- ]name [# DIRECTIVE reason]"),
which ends them. KUnit indents by 4 spaces, the spec by 2, some tools by a tab: a level is any
deeper indentation. Diagnostic lines ("# ...") printed before a result belong to it, as
kselftest and KUnit print them. Other lines inside a subtest (KUnit's "Expected x == y"
continuations) are diagnostics too; outside any subtest they are console noise and dropped.
printk timestamps are stripped first, so a kernel console log parses like the raw stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

TestStatus = Literal["pass", "fail", "skip", "xfail", "todo", "timeout", "error"]
Outcome = Literal["pass", "fail", "skip", "error"]

# What each KTAP status means for a report.
OUTCOME: Mapping[TestStatus, Outcome] = MappingProxyType({
    "pass": "pass",
    "fail": "fail",
    "skip": "skip",
    # The test expected to fail and did: nothing is wrong.
    "xfail": "pass",
    # TODO marks a test known not to work yet (KTAP discourages it): its result is not
    # counted either way, which is what a skip means in our reports.
    "todo": "skip",
    # The test never finished (hung, crashed, or could not run): not a verdict on the code
    # it tests but a broken run, the report's "error".
    "timeout": "error",
    "error": "error",
})
DIRECTIVES: Mapping[str, TestStatus] = MappingProxyType({
    "SKIP": "skip", "TODO": "todo", "XFAIL": "xfail", "TIMEOUT": "timeout", "ERROR": "error"})

PRINTK_PREFIX_RE = re.compile(r"^\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])?\s?")
VERSION_RE = re.compile(r"^K?TAP version \d+$")
SUBTEST_RE = re.compile(r"^# Subtest: (.+)$")
PLAN_RE = re.compile(r"^1\.\.(\d+)\b")
RESULT_RE = re.compile(r"^(ok|not ok) (\d+)\b\s*(?:- ?)?([^#]*?)\s*(?:#\s*(.*?))?\s*$",
                       re.IGNORECASE)
DIRECTIVE_RE = re.compile(r"^([A-Za-z]+)\b:?\s*(.*)$")
BAIL_RE = re.compile(r"^Bail out!\s*(.*)$")
DIAGNOSTIC_RE = re.compile(r"^#\s?(.*)$")
# KUnit prints test attributes as diagnostic lines (lib/kunit/attributes.c): data about the
# suite or case, not a message from it.
ATTRIBUTE_RE = re.compile(r"^# (?:\S+\.)?(?:module|speed|is_init): ")
CUT_OFF = "no result: the output ended inside this test"


@dataclass(frozen=True)
class TestResult:
    number: int
    name: str
    status: TestStatus
    reason: str
    diagnostics: tuple[str, ...]
    children: tuple[TestResult, ...] = ()

    @property
    def outcome(self) -> Outcome:
        return OUTCOME[self.status]


@dataclass(frozen=True)
class Ktap:
    version_seen: bool
    planned: int | None
    results: tuple[TestResult, ...]
    trailing: tuple[str, ...]
    bail_out: str | None
    # The top-level test whose result line never came (the output stopped inside it).
    unfinished: TestResult | None = None

    @property
    def complete(self) -> bool:
        """A plan was printed and every planned result arrived."""
        return self.planned is not None and len(self.results) == self.planned

    def result(self, name: str) -> TestResult | None:
        return next((r for r in self.results if r.name == name), None)

    def missing(self) -> int:
        return max(0, (self.planned or 0) - len(self.results))

    def tests(self) -> tuple[TestResult, ...]:
        """Every top-level test, the unfinished one last."""
        return self.results + ((self.unfinished,) if self.unfinished else ())


def strip_printk(line: str) -> str:
    """LINE without the console's "[    1.234567] " (and "[  T1]" caller) prefix."""
    return PRINTK_PREFIX_RE.sub("", line.rstrip("\r\n"))


def parse(text: str) -> Ktap:
    parser = _Parser()
    for line in text.splitlines():
        parser.feed(strip_printk(line))
    return parser.finish()


def directive_status(word: str) -> TestStatus | None:
    """The status a directive gives a result; None for an unknown one, where the spec says
    to fall back to ok / not ok."""
    if word.upper().startswith("SKIP"):
        return "skip"  # TAP also allows "# skipped ..."
    return DIRECTIVES.get(word.upper())


@dataclass
class _Level:
    """One test's subtests while they are being read."""

    indent: int
    nested: bool
    name: str = ""
    version_seen: bool = False
    planned: int | None = None
    results: list[TestResult] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    # The subtests that just ended: children of this level's next result line.
    closed: _Level | None = None

    @property
    def fresh(self) -> bool:
        return not self.results and self.planned is None

    def cut_off(self, number: int, inner: TestResult | None) -> TestResult:
        """This level as the result of a test whose result line never came."""
        if inner is None and self.closed is not None:
            inner = self.closed.cut_off(len(self.results) + 1, None)
        children = (*self.results, *((inner,) if inner else ()))
        return TestResult(number, self.name, "error", CUT_OFF, tuple(self.pending), children)


class _Parser:
    def __init__(self) -> None:
        self.stack = [_Level(0, nested=False)]
        self.bail_out: str | None = None

    def feed(self, line: str) -> None:
        body = line.strip()
        indent = len(line) - len(line.lstrip())
        if not body:
            return
        if VERSION_RE.match(body):
            self._header(indent, None)
        elif subtest := SUBTEST_RE.match(body):
            self._header(indent, subtest.group(1).strip())
        elif plan := PLAN_RE.match(body):
            level = self._level_for(indent)
            if level.planned is None:
                level.planned = int(plan.group(1))
        elif result := RESULT_RE.match(body):
            self._result(self._level_for(indent), result)
        elif bail := BAIL_RE.match(body):
            self.bail_out = self.bail_out or bail.group(1) or "bail out"
        elif ATTRIBUTE_RE.match(body):
            return
        elif diagnostic := DIAGNOSTIC_RE.match(body):
            self._close_deeper(indent)
            self.stack[-1].pending.append(diagnostic.group(1))
        else:
            self._unknown(indent, body)

    def _close_deeper(self, indent: int) -> None:
        """End the subtests indented deeper than INDENT: a shallower line is past them."""
        while len(self.stack) > 1 and self.stack[-1].indent > indent:
            child = self.stack.pop()
            parent = self.stack[-1]
            parent.pending += child.pending
            child.pending = []
            parent.closed = child

    def _level_for(self, indent: int) -> _Level:
        """The level a plan or result at INDENT belongs to; deeper than every open level
        (subtests without a header line) opens one."""
        self._close_deeper(indent)
        if indent > self.stack[-1].indent:
            self.stack.append(_Level(indent, nested=True))
        return self.stack[-1]

    def _header(self, indent: int, name: str | None) -> None:
        """A version or "# Subtest:" line: it opens subtests, or names the fresh ones at its
        indentation (KUnit prints both, version first); anything else is a diagnostic."""
        self._close_deeper(indent)
        level = self.stack[-1]
        if indent > level.indent:
            self.stack.append(_Level(indent, nested=True, name=name or "",
                                     version_seen=name is None))
        elif name is None and level.fresh and not level.version_seen:
            level.version_seen = True
        elif name is not None and level.nested and level.fresh and not level.name:
            level.name = name
        elif name is not None:
            level.pending.append(f"Subtest: {name}")

    def _result(self, level: _Level, match: re.Match[str]) -> None:
        directive, reason = _directive(match.group(4) or "")
        status = directive or ("pass" if match.group(1).lower() == "ok" else "fail")
        diagnostics = tuple(level.pending)
        if status == "fail" and not reason and diagnostics:
            reason = diagnostics[-1]
        closed = level.closed
        name = match.group(3).strip() or (closed.name if closed else "")
        children = tuple(closed.results) if closed else ()
        level.results.append(TestResult(int(match.group(2)), name, status, reason, diagnostics,
                                        children))
        level.pending = []
        level.closed = None

    def _unknown(self, indent: int, body: str) -> None:
        """A line that is no KTAP: part of the innermost subtest it is indented into, if any
        (e.g. KUnit's multi-line expectation failures), else console noise."""
        level = next(lv for lv in reversed(self.stack) if lv.indent <= indent)
        if level.nested:
            level.pending.append(body)

    def finish(self) -> Ktap:
        cut: TestResult | None = None
        while len(self.stack) > 1:
            level = self.stack.pop()
            cut = level.cut_off(len(self.stack[-1].results) + 1, cut)
        top = self.stack[0]
        if cut is None and top.closed is not None:
            cut = top.closed.cut_off(len(top.results) + 1, None)
        return Ktap(top.version_seen, top.planned, tuple(top.results), tuple(top.pending),
                    self.bail_out, cut)


def _directive(text: str) -> tuple[TestStatus | None, str]:
    """(status the directive gives, reason) of what follows a result's "#"; without a known
    directive it is all reason ("ok 5 check return code # rcode=0")."""
    match = DIRECTIVE_RE.match(text)
    status = directive_status(match.group(1)) if match else None
    if match and status is not None:
        return status, match.group(2).strip()
    return None, text.strip()
