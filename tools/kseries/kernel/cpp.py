"""The C preprocessor's conditionals: which #if conditions a line is compiled under, and what a
condition is worth under a kernel .config (or with nothing known, only its constant part).

Not a preprocessor: macros are not expanded, so a condition on anything but a CONFIG_ symbol
or a number is unknown (None), and an unknown part only matters where it could decide.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PP_LINE_RE = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
PP_TOKEN_RE = re.compile(r"\w+|&&|\|\||[!=<>]=|<<|>>|\S")
# A C integer literal: the digits (hex, binary, octal or decimal), then any U/L suffix.
INTEGER_RE = re.compile(r"(0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)[uUlL]*")
# The kernel's tests of a CONFIG_ symbol (include/linux/kconfig.h), besides defined().
SYMBOL_TESTS = ("defined", "IS_ENABLED", "IS_BUILTIN", "IS_MODULE", "IS_REACHABLE")

# An open #if group: the conditions of the branches before the current one, and the current
# branch's own condition (None for #else).
_Group = tuple[tuple[str, ...], str | None]


def guards(text: str) -> list[tuple[str, ...]]:
    """For every line of C TEXT (index 0 is line 1), the #if conditions it is compiled under,
    as C preprocessor expressions (an #elif or #else branch also negates the ones before)."""
    stack: list[_Group] = []
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


def _directive(stack: list[_Group], keyword: str, arg: str) -> None:
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


def evaluate(expr: str, values: Mapping[str, str] | None = None) -> bool | None:
    """A preprocessor condition: True, False, or None when it depends on something unknown
    (a non-CONFIG macro, a comparison). VALUES are a .config's (symbol without CONFIG_ ->
    y, m, n or a value); without them every macro is unknown and only numbers decide."""
    parser = _Condition(PP_TOKEN_RE.findall(expr), values)
    try:
        value = parser.either()
    except (IndexError, ValueError):
        return None
    return value if parser.at == len(parser.tokens) else None


def _integer(token: str) -> int:
    """The value of a C integer literal (a leading 0 means octal); ValueError if it is none."""
    match = INTEGER_RE.fullmatch(token)
    if match is None:
        raise ValueError(token)
    digits = match.group(1)
    octal = digits[:1] == "0" and digits[1:].isdigit()
    return int(digits, 8 if octal else 0)


class _Condition:
    """Recursive descent over ||, &&, !, (), defined(), IS_ENABLED() and friends."""

    def __init__(self, tokens: list[str], values: Mapping[str, str] | None) -> None:
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
        if token in SYMBOL_TESTS:
            parens = self.peek() == "("
            if parens:
                self.take()
            name = self.take()
            if parens and self.take() != ")":
                raise ValueError(name)
            return self.symbol(token, name)
        if token[:1].isdigit():
            return _integer(token) != 0
        if re.fullmatch(r"\w+", token):
            return self.symbol("value", token)
        raise ValueError(token)

    def symbol(self, test: str, name: str) -> bool | None:
        if self.values is None or not name.startswith("CONFIG_"):
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
