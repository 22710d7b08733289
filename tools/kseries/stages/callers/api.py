"""What a series changes: functions and macros whose signature or body its diffs touch, and
the flag constants it adds or removes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk, PatchSet

from kseries.core.errors import KseriesError
from kseries.kernel.ccalls import signatures_in
from kseries.kernel.ctokens import (
    TYPE_KEYWORDS,
    CallSite,
    Token,
    function_spans,
    looks_like_params,
    tokenize,
)
from kseries.stages.callers.model import ChangedApi, ChangedFunction

_DEFINE_RE = re.compile(r"^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class _SideChange:
    name: str
    kind: Literal["function", "macro"]
    params: tuple[str, ...] | None
    signature: bool
    body: bool


def changed_api(diffs: Sequence[str], flags_prefix: str = "MHP_") -> ChangedApi:
    """Functions and macros whose signature or body the series touches, and new constants.

    DIFFS holds the diff text of each patch of the series, in order.
    """
    collected: dict[tuple[str, str], list[tuple[_SideChange | None, _SideChange | None]]] = {}
    added: dict[str, int] = {}
    for number, diff in enumerate(diffs, start=1):
        try:
            patch = PatchSet(diff)
        except UnidiffParseError as err:
            raise KseriesError(f"patch {number} of the series: cannot parse its diff ({err}); "
                               "regenerate it with git format-patch") from None
        for patched in patch:
            path = patched.path
            if not path.endswith((".c", ".h")):
                continue
            for hunk in patched:
                _count_constants(hunk, flags_prefix, added)
                old = _side_changes(hunk, "old")
                new = _side_changes(hunk, "new")
                for name in dict.fromkeys([*old, *new]):
                    collected.setdefault((path, name), []).append((old.get(name), new.get(name)))
    functions = tuple(_merge(path, name, changes) for (path, name), changes in collected.items())
    return ChangedApi(functions,
                      tuple(sorted(n for n, c in added.items() if c > 0)),
                      tuple(sorted(n for n, c in added.items() if c < 0)))


def _count_constants(hunk: Hunk, prefix: str, added: dict[str, int]) -> None:
    for line in hunk:
        found = _DEFINE_RE.match(line.value)
        if found and found.group(1).startswith(prefix) and (line.is_added or line.is_removed):
            added[found.group(1)] = added.get(found.group(1), 0) + (1 if line.is_added else -1)


def _merge(path: str, name: str,
           changes: list[tuple[_SideChange | None, _SideChange | None]]) -> ChangedFunction:
    sides = [s for pair in changes for s in pair if s is not None]
    old = next((o.params for o, _ in changes if o is not None and o.params is not None), None)
    new = next((n.params for _, n in reversed(changes) if n is not None and n.params is not None),
               None)
    return ChangedFunction(name, path, sides[0].kind, old, new, any(s.signature for s in sides),
                           any(s.body for s in sides))


def _side_changes(hunk: Hunk, side: Literal["old", "new"]) -> dict[str, _SideChange]:
    """Functions/macros on one side of HUNK whose signature or body has changed lines."""
    lines = [(line.value.rstrip("\n"), line.is_removed if side == "old" else line.is_added)
             for line in hunk
             if line.is_context or (line.is_removed if side == "old" else line.is_added)]
    changed = {number for number, (_, touched) in enumerate(lines, start=1) if touched}
    if not changed:
        return {}
    text = "\n".join(value for value, _ in lines)
    if _starts_in_comment(text):
        text = "/*" + text
    tokens = tokenize(text)
    depth = _start_depth(tokens, text.splitlines())
    header = _header_function(hunk.section_header or "")
    result: dict[str, _SideChange] = {}
    signatures = signatures_in(tokens, depth, header)
    visible = {s.name: s.args for s in signatures if s.kind == "definition"}
    for site in signatures:
        span = set(range(site.line, site.end_line + 1))
        macro = site.text.startswith("#define")
        if span & changed and (macro or site.kind == "definition" or _has_params(site)):
            result[site.name] = _SideChange(site.name, "macro" if macro else "function",
                                            site.args, True, False)
    for body in function_spans(tokens, depth, header):
        if set(range(body.start_line, body.end_line + 1)) & changed:
            known = result.get(body.name)
            params = known.params if known else visible.get(body.name)
            result[body.name] = _SideChange(body.name, "function", params,
                                            bool(known and known.signature), True)
    return result


def _has_params(site: CallSite) -> bool:
    """A declaration with a parameter list, not a macro invocation like EXPORT_SYMBOL(x)."""
    return not site.args or looks_like_params([tokenize(a) for a in site.args])


def _starts_in_comment(text: str) -> bool:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    opening, closing = text.find("/*"), text.find("*/")
    return first.startswith("*") or (closing >= 0 and (opening < 0 or closing < opening))


def _start_depth(tokens: Sequence[Token], lines: Sequence[str]) -> int:
    """How deep in braces a hunk starts.

    At least deep enough that it never closes below zero. A hunk with balanced braces
    whose first code line is indented (and not the rest of a parameter list) starts
    inside a function body: kernel style indents nothing else at file scope.
    """
    depth = lowest = parens = 0
    unmatched: int | None = None  # the first ')' closing a '(' before the hunk
    for index, token in enumerate(tokens):
        if token.kind != "punct":
            continue
        if token.text == "{":
            depth += 1
        elif token.text == "}":
            depth -= 1
            lowest = min(lowest, depth)
        elif token.text == "(":
            parens += 1
        elif token.text == ")":
            parens -= 1
            if parens < 0 and unmatched is None and depth == 0 and lowest == 0:
                unmatched = index
    if lowest < 0:
        return -lowest
    first = next((t for t in tokens if t.kind != "directive"), None)
    if first is None or lines[first.line - 1][:1] not in ("\t", " "):
        return 0
    if unmatched is not None:  # the rest of a parameter list, or of a call in a body?
        rest = [t for t in tokens[:unmatched] if t.kind != "directive"]
        pieces: list[list[Token]] = [[]]
        for token in rest:
            if token.text == ",":
                pieces.append([])
            else:
                pieces[-1].append(token)
        return 0 if looks_like_params(pieces) else 1
    return 1


def _header_function(header: str) -> str:
    """The function a hunk's @@ section header names (git's funcname line)."""
    tokens = tokenize(header)
    for index, token in enumerate(tokens[:-1]):
        if token.kind == "ident" and tokens[index + 1].text == "(" and \
                token.text not in TYPE_KEYWORDS:
            return token.text
    return ""
