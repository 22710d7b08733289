"""Facts about one file: names declared with the flags type, assignments, macros, includes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kseries.kernel.ctokens import Token, analyse, next_code, prev_code, tokenize
from kseries.stages.callers.model import QUALIFIERS, SourceFile


@dataclass(frozen=True)
class FileFacts:
    """What a file declares: names of the flags type, assignments and macros."""

    flag_names: frozenset[str]
    assignments: dict[str, tuple[tuple[int, tuple[Token, ...]], ...]]
    macros: dict[str, tuple[int, tuple[Token, ...]]]


def declared_names(tokens: Sequence[Token], type_name: str) -> frozenset[str]:
    """Variables, parameters and struct fields declared with TYPE_NAME (not pointers)."""
    names: set[str] = set()
    for index, token in enumerate(tokens):
        if token.kind != "ident" or token.text != type_name:
            continue
        position = next_code(tokens, index)
        while position is not None and tokens[position].text in QUALIFIERS:
            position = next_code(tokens, position)
        if position is None or tokens[position].kind != "ident":
            continue  # a cast (mhp_t), a pointer, a typedef's end
        names.add(tokens[position].text)
        before = prev_code(tokens, index)
        in_params = before is not None and tokens[before].text in ("(", ",")
        if not in_params:
            names.update(_more_declarators(tokens, position))
    return frozenset(names)


def _more_declarators(tokens: Sequence[Token], first: int) -> list[str]:
    """`mhp_t a = X, b;`: the names after the first declarator."""
    names, depth = [], 0
    for index in range(first + 1, min(first + 200, len(tokens))):
        token = tokens[index]
        if token.kind != "punct":
            continue
        if token.text in "([{":
            depth += 1
        elif token.text in ")]}":
            depth -= 1
            if depth < 0:
                break
        elif token.text == ";" and depth == 0:
            break
        elif token.text == "," and depth == 0:
            after = next_code(tokens, index)
            if after is not None and tokens[after].kind == "ident":
                names.append(tokens[after].text)
    return names


def assignments_in(tokens: Sequence[Token]) -> dict[str, tuple[tuple[int, tuple[Token, ...]], ...]]:
    """Every `x = ...`, `p->x |= ...` and `.x = ...` keyed by x: (line, right-hand tokens)."""
    found: dict[str, list[tuple[int, tuple[Token, ...]]]] = {}
    for index, token in enumerate(tokens):
        if token.kind != "punct" or token.text not in ("=", "|=") or index == 0:
            continue
        target = tokens[index - 1]
        if target.kind != "ident":
            continue
        found.setdefault(target.text, []).append((token.line, _expression_after(tokens, index)))
    return {name: tuple(values) for name, values in found.items()}


def _expression_after(tokens: Sequence[Token], index: int) -> tuple[Token, ...]:
    expression, depth = [], 0
    for token in tokens[index + 1:index + 400]:
        if token.kind == "directive":
            continue
        if token.kind == "punct":
            if token.text in "([{":
                depth += 1
            elif token.text in ")]}":
                depth -= 1
                if depth < 0:
                    break
            elif token.text in (";", ",") and depth == 0:
                break
        expression.append(token)
    return tuple(expression)


def macros_in(tokens: Sequence[Token]) -> dict[str, tuple[int, tuple[Token, ...]]]:
    """Each #define's body tokens (after its parameter list), by name."""
    macros: dict[str, tuple[int, tuple[Token, ...]]] = {}
    for token in tokens:
        body = token.body
        if token.kind != "directive" or len(body) < 2 or body[0].text != "define":
            continue
        start = 2
        if re.match(r"#\s*define\s+\w+\(", token.text):
            start = analyse(body).match.get(2, len(body) - 1) + 1
        macros.setdefault(body[1].text, (token.line, tuple(body[start:])))
    return macros


def file_facts(source: SourceFile, flags_type: str) -> FileFacts:
    return FileFacts(declared_names(source.tokens, flags_type), assignments_in(source.tokens),
                     macros_in(source.tokens))


def local_includes(source: SourceFile) -> list[str]:
    """Tree paths of `#include "x.h"` headers next to SOURCE."""
    directory = PurePosixPath(source.path).parent
    found = []
    for token in source.tokens:
        body = token.body
        if token.kind == "directive" and len(body) >= 2 and body[0].text == "include" \
                and body[1].kind == "string":
            found.append(str(directory / body[1].text.strip('"')))
    return found


@dataclass
class IncludeCache:
    """Flag-typed names of local headers, read only when a member access needs them."""

    tree: Path
    flags_type: str
    names: dict[str, frozenset[str]] = field(default_factory=dict)

    def names_for(self, source: SourceFile) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for header in local_includes(source):
            if header not in self.names:
                path = self.tree / header
                text = path.read_text(errors="replace") if path.is_file() else ""
                self.names[header] = declared_names(tokenize(text), self.flags_type)
            found |= self.names[header]
        return found
