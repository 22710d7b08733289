"""A small C tokenizer and call-site finder for kernel sources.

It is not a C parser: it knows tokens, brackets, preprocessor directives (with `#if 0`
groups skipped) and enough of C's shape to tell a call from a definition, a declaration,
a function-pointer use or a call inside a macro body, and which function a call is in.
Comments are dropped; every token keeps the 1-based line it starts on in the original
source (backslash-newline continuations are spliced out first, as the compiler does).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, NamedTuple

from kseries.kernel.cpp import evaluate

Kind = Literal["call", "definition", "declaration", "address", "macro_call", "export"]


class Token(NamedTuple):
    """One token. A NamedTuple rather than a dataclass: a large file has ~50k of them.

    kind is ident, number, string, char, punct, other (a stray character such as a
    backslash) or directive. A directive token is a whole
    preprocessor line (continuations included); its body holds the tokens after the '#'.
    """

    kind: str
    text: str
    line: int
    body: tuple[Token, ...] = ()


@dataclass(frozen=True)
class CallSite:
    """One occurrence of a wanted name: a call, definition, declaration or other use."""

    file: str
    line: int
    function: str
    name: str
    text: str
    args: tuple[str, ...]
    kind: Kind = "call"
    end_line: int = 0


@dataclass(frozen=True)
class Structure:
    """Per-token brace depth and enclosing function, plus matching bracket indices."""

    depth: tuple[int, ...]
    function: tuple[str, ...]
    match: dict[int, int]


@dataclass(frozen=True)
class FunctionSpan:
    """A function body: from the line of its name to the line of its closing brace."""

    name: str
    start_line: int
    end_line: int


# Continuations: gcc also splices a backslash followed by blanks and a newline (with a warning).
_SPLICE_RE = re.compile(r"\\[ \t]*\r?\n")
_TOKEN_RE = re.compile(
    r"""
     (?P<ws>[ \t\f\v\r]+)
    |(?P<nl>\n)
    |(?P<com>/\*.*?(?:\*/|\Z)|//[^\n]*)
    |(?P<string>(?:u8|[uUL])?"(?:[^"\\\n]|\\.)*"?)
    |(?P<char>(?:u8|[uUL])?'(?:[^'\\\n]|\\.)*'?)
    |(?P<ident>[A-Za-z_$][A-Za-z0-9_$]*)
    |(?P<number>\.?[0-9](?:[eEpP][+-]|[0-9A-Za-z_.])*)
    |(?P<punct>\.\.\.|<<=|>>=|->|\+\+|--|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^]=|\#\#
               |[\[\](){}.&*+\-~!/%<>^|?:;=,\#])
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# Inside a skipped group only comments, newlines and directive lines matter.
_SKIP_RE = re.compile(
    r"(?P<nl>\n)|(?P<com>/\*.*?(?:\*/|\Z)|//[^\n]*)|(?P<ws>[ \t\f\v\r]+)"
    r"|(?P<punct>\#)|(?P<other>[^\n/#\s]+|.)",
    re.DOTALL,
)
# A directive runs to the end of its (spliced) line; a block comment may carry it further.
_DIRECTIVE_RE = re.compile(
    r"""\#(?:[^\n/"']+|/\*.*?(?:\*/|\Z)|//[^\n]*|/|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)*""",
    re.DOTALL,
)

TYPE_KEYWORDS = frozenset({
    "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "_Bool",
    "bool", "struct", "union", "enum", "const", "volatile", "restrict", "__restrict",
})
# Keywords that may stand right before an identifier inside an expression.
_EXPRESSION_KEYWORDS = frozenset({"sizeof", "return", "case", "typeof", "__typeof__", "alignof",
                                  "_Alignof", "__alignof__", "else", "do", "goto"})
_STATEMENT_KEYWORDS = frozenset({"if", "while", "for", "switch", "return", "sizeof", "do",
                                 "else", "case", "typeof", "__typeof__", "_Generic"})
_ATTRIBUTE_MACROS = frozenset({
    "__attribute__", "__attribute", "__acquires", "__releases", "__must_hold", "__cond_acquires",
    "__cond_releases", "__printf", "__scanf", "__alloc_size", "__section", "__aligned",
    "__diagnose_as", "__malloc", "__no_sanitize_address", "__realloc_size",
})
_OPENERS = frozenset("([{")
_CLOSERS = frozenset(")]}")
_CONDITIONALS = frozenset({"if", "ifdef", "ifndef", "elif", "elifdef", "elifndef", "else",
                           "endif"})


# --- lexing -----------------------------------------------------------------------------


class _LineMap:
    """Line numbers of offsets in the spliced text, counting the spliced-out newlines too."""

    def __init__(self, text: str, splices: Sequence[int]) -> None:
        self._newlines = [m.start() for m in re.finditer("\n", text)]
        self._splices = splices

    def line(self, pos: int) -> int:
        return 1 + bisect_left(self._newlines, pos) + bisect_right(self._splices, pos)


def splice(src: str) -> tuple[str, list[int]]:
    """SRC without backslash-newlines, and the offsets in the result where one was removed."""
    parts = _SPLICE_RE.split(src)
    offsets: list[int] = []
    position = 0
    for part in parts[:-1]:
        position += len(part)
        offsets.append(position)
    return "".join(parts), offsets


def _constant(tokens: Sequence[Token]) -> bool | None:
    """The truth of an #if expression where no macro is known (#if 0, #if (1)); else None."""
    return evaluate(" ".join(t.text for t in tokens))


# A conditional group: (inside a skipped outer group, what is known so far, skipping now).
# "false": every branch so far was 0; "true": a branch was certainly taken; else "unknown".
_Group = tuple[bool, str, bool]


def _enter_conditional(stack: list[_Group], name: str, expr: Sequence[Token]) -> None:
    """Update the #if stack for directive NAME; the top entry says whether we skip."""
    skipping = bool(stack) and stack[-1][2]
    if name in ("if", "ifdef", "ifndef"):
        if skipping:
            stack.append((True, "unknown", True))
            return
        value = _constant(expr) if name == "if" else None
        state = "unknown" if value is None else ("true" if value else "false")
        stack.append((False, state, value is False))
    elif name in ("elif", "elifdef", "elifndef", "else") and stack and not stack[-1][0]:
        state = stack[-1][1]
        if name == "else" or state == "true":
            stack[-1] = (False, "true", state == "true")
            return
        value = _constant(expr) if name == "elif" else None
        if value is None:
            stack[-1] = (False, "unknown", False)
        else:
            stack[-1] = (False, "true" if value else state, not value)
    elif name == "endif" and stack:
        stack.pop()


def _scan(text: str, start: int, end: int, lines: _LineMap,
          stack: list[_Group] | None) -> list[Token]:
    """Tokens of TEXT[start:end]; with a STACK, directives are recognised and #if 0 skipped."""
    tokens: list[Token] = []
    pos = start
    line_start = True
    while pos < end:
        skipping = stack is not None and bool(stack) and stack[-1][2]
        found = (_SKIP_RE if skipping else _TOKEN_RE).match(text, pos, end)
        assert found is not None  # the last alternative of both patterns matches any char
        group = found.lastgroup
        if group == "nl":
            line_start = True
        elif group in ("ws", "com"):
            pass
        elif stack is not None and line_start and found.group() == "#":
            pos = _directive(text, pos, lines, stack, tokens, skipping)
            continue
        else:
            line_start = False
            if not skipping:
                tokens.append(Token(group or "other", found.group(), lines.line(pos)))
        pos = found.end()
    return tokens


def _directive(text: str, pos: int, lines: _LineMap, stack: list[_Group],
               out: list[Token], was_skipping: bool) -> int:
    """Read the directive at POS into OUT (unless skipped) and return where it ends."""
    found = _DIRECTIVE_RE.match(text, pos)
    assert found is not None
    end = found.end()
    body = tuple(_scan(text, pos + 1, end, lines, None))
    name = body[0].text if body and body[0].kind == "ident" else ""
    if name in _CONDITIONALS:
        _enter_conditional(stack, name, body[1:])
    now_skipping = bool(stack) and stack[-1][2]
    if not was_skipping or not now_skipping:
        out.append(Token("directive", found.group(), lines.line(pos), body))
    return end


def tokenize(src: str) -> list[Token]:
    """The tokens of C source SRC, comments dropped and `#if 0` groups skipped."""
    text, splices = splice(src.replace("\r\n", "\n"))
    return _scan(text, 0, len(text), _LineMap(text, splices), [])


# --- structure ----------------------------------------------------------------------------


def is_punct(token: Token, text: str) -> bool:
    return token.kind == "punct" and token.text == text


def next_code(tokens: Sequence[Token], index: int) -> int | None:
    """Index of the first non-directive token after INDEX, or None."""
    for position in range(index + 1, len(tokens)):
        if tokens[position].kind != "directive":
            return position
    return None


def prev_code(tokens: Sequence[Token], index: int) -> int | None:
    """Index of the last non-directive token before INDEX, or None."""
    for position in range(index - 1, -1, -1):
        if tokens[position].kind != "directive":
            return position
    return None


def analyse(tokens: Sequence[Token], start_depth: int = 0,
            start_function: str = "") -> Structure:
    """Brace depth and enclosing function of every token, and matching brackets.

    Both branches of an unknown #if are tokens here; like ctags, we count braces as if
    only the first branch existed, so `#ifdef A  f(int a) {  #else  f(void) {  #endif`
    opens one brace. START_DEPTH/START_FUNCTION describe where a snippet (a diff hunk) starts.
    """
    depth, function = start_depth, start_function if start_depth > 0 else ""
    stack: list[int] = []
    saved: list[list[tuple[int, list[int], str] | None]] = []
    depths, functions = [0] * len(tokens), [""] * len(tokens)
    match: dict[int, int] = {}
    for index, token in enumerate(tokens):
        if token.kind == "directive":
            name = token.body[0].text if token.body else ""
            if name in ("if", "ifdef", "ifndef"):
                saved.append([(depth, list(stack), function), None])
            elif name in _CONDITIONALS and name != "endif" and saved:
                if saved[-1][1] is None:
                    saved[-1][1] = (depth, list(stack), function)
                depth, stack, function = _restore(saved[-1][0])
            elif name == "endif" and saved:
                first_branch = saved.pop()[1]
                if first_branch is not None:
                    depth, stack, function = _restore(first_branch)
        elif token.kind == "punct" and token.text in _OPENERS:
            if token.text == "{":
                if depth == 0:
                    function = function_before(tokens, index, match)
                depth += 1
            stack.append(index)
        elif token.kind == "punct" and token.text in _CLOSERS:
            if stack:
                opener = stack.pop()
                match.setdefault(opener, index)
                match.setdefault(index, opener)
            if token.text == "}":
                depth = max(depth - 1, 0)
                if depth == 0:
                    function = ""
                    depths[index], functions[index] = depth + 1, functions[index - 1]
                    continue
        depths[index], functions[index] = depth, function
    return Structure(tuple(depths), tuple(functions), match)


def _restore(state: tuple[int, list[int], str] | None) -> tuple[int, list[int], str]:
    assert state is not None
    return state[0], list(state[1]), state[2]


def function_before(tokens: Sequence[Token], brace: int, match: dict[int, int]) -> str:
    """The function name if the file-scope '{' at BRACE opens a function body, else ''.

    Walks back over attributes (`__acquires(x)`, `__cold`) and K&R parameter declarations
    to the parameter list, and returns the identifier before it.
    """
    index = brace - 1
    for _ in range(200):
        if index < 0:
            return ""
        token = tokens[index]
        if token.kind == "directive":
            index -= 1
        elif is_punct(token, ")"):
            opener = match.get(index)
            before = prev_code(tokens, opener) if opener is not None else None
            if opener is None or before is None or tokens[before].kind != "ident" \
                    or tokens[before].text in _STATEMENT_KEYWORDS:
                return ""
            if not _is_attribute(tokens, before, opener, index):
                return _function_name(tokens, before, opener, index)
            index = before - 1
        elif token.kind == "ident":
            if token.text in ("struct", "union", "enum"):
                return ""
            index -= 1
        elif token.kind == "number" or token.text in (";", "*", ",", "[", "]"):
            index -= 1
        else:
            return ""
    return ""


def _function_name(tokens: Sequence[Token], name: int, opener: int, closer: int) -> str:
    """NAME, or `SYSCALL_DEFINE2(kill)` for a function defined through a macro."""
    text = tokens[name].text
    args = split_args(tokens, opener, closer)
    if text.isupper() and args and len(args[0]) == 1 and args[0][0].kind == "ident":
        return f"{text}({args[0][0].text})"
    return text


def _is_attribute(tokens: Sequence[Token], name: int, opener: int, closer: int) -> bool:
    """Whether NAME(...) after a parameter list is an attribute like __must_hold(&lock)."""
    if tokens[name].text in _ATTRIBUTE_MACROS:
        return True
    before = prev_code(tokens, name)
    if before is None or not is_punct(tokens[before], ")"):
        return False
    args = split_args(tokens, opener, closer)
    return bool(args) and not looks_like_params(args)


def function_spans(tokens: Sequence[Token], start_depth: int = 0,
                   start_function: str = "") -> list[FunctionSpan]:
    """Every function body in TOKENS with its name and line range."""
    structure = analyse(tokens, start_depth, start_function)
    spans: list[FunctionSpan] = []
    current, first = "", 0
    for index in range(len(tokens)):
        name = structure.function[index]
        if name and name != current:
            current, first = name, _name_line(tokens, index, name)
        if current and not name:
            spans.append(FunctionSpan(current, first, tokens[index - 1].line))
            current = ""
    if current:
        spans.append(FunctionSpan(current, first, tokens[-1].line))
    return spans


def _name_line(tokens: Sequence[Token], brace: int, name: str) -> int:
    """The line of NAME before the body that starts at BRACE (or the brace's own line)."""
    for index in range(brace - 1, max(brace - 400, -1), -1):
        if tokens[index].kind == "ident" and tokens[index].text == name:
            return tokens[index].line
    return tokens[brace].line


# --- arguments and text -------------------------------------------------------------------


def split_args(tokens: Sequence[Token], opener: int, closer: int) -> list[list[Token]]:
    """The tokens of each top-level comma-separated argument between OPENER and CLOSER."""
    args: list[list[Token]] = [[]]
    depth = 0
    for token in tokens[opener + 1:closer]:
        if token.kind == "directive":
            continue
        if token.kind == "punct":
            if token.text in _OPENERS:
                depth += 1
            elif token.text in _CLOSERS:
                depth -= 1
            elif token.text == "," and depth == 0:
                args.append([])
                continue
        args[-1].append(token)
    return [] if args == [[]] else args


def _ends_operand(token: Token | None) -> bool:
    if token is None:
        return False
    if token.kind == "ident":
        return token.text not in _EXPRESSION_KEYWORDS
    return token.kind in ("number", "string", "char") or token.text in (")", "]", "++", "--")


def join_tokens(tokens: Sequence[Token], declaration: bool = False) -> str:
    """TOKENS as normalised text: single spaces only where kernel style puts them.

    `MHP_NONE|( flags )` and `MHP_NONE | (flags)` both become `MHP_NONE | (flags)`; a
    comment or a line break inside is gone. With DECLARATION, `char*p` is `char *p`.
    """
    parts: list[str] = []
    opened: list[tuple[int, bool]] = []  # index of each open '(' and whether it is a call's
    prev: Token | None = None
    prev_unary = prev_cast = False
    for index, token in enumerate(tokens):
        if prev is not None and _space_between(prev, token, prev_unary, prev_cast):
            parts.append(" ")
        parts.append(token.text)
        unary_capable = token.text in ("&", "*", "-", "+", "++", "--")
        unary = token.kind == "punct" and (token.text in ("!", "~") or (unary_capable and (
            (declaration and token.text == "*") or not _ends_operand(prev))))
        prev_cast = False
        if token.kind == "punct" and token.text == "(":
            opened.append((index, _ends_operand(prev)))
        elif token.kind == "punct" and token.text == ")" and opened:
            start, is_call = opened.pop()
            inner = tokens[start + 1:index]
            prev_cast = not is_call and bool(inner) and all(
                t.kind == "ident" or t.text == "*" for t in inner)
        prev, prev_unary = token, unary
    return "".join(parts)


def _space_between(prev: Token, token: Token, prev_unary: bool, prev_cast: bool) -> bool:
    """Whether normalised text has a space between PREV and TOKEN."""
    text, before = token.text, prev.text
    if token.kind == "punct" and text in (")", "]", ",", ";", "["):
        return False
    if token.kind == "punct" and text in (".", "->"):  # a member, or a designator `{ .a = 1`
        return not _ends_operand(prev)
    if prev.kind == "punct" and before in ("(", "[", ".", "->"):
        return False
    if token.kind == "punct" and text == "(" and (
            (prev.kind == "ident" and before not in ("return", "case", "else", "do"))
            or before in (")", "]")):
        return False
    if token.kind == "punct" and text in ("++", "--") and _ends_operand(prev):
        return False
    if prev_unary:
        return False
    return not (prev_cast and (token.kind != "punct" or text in ("!", "~", "{")))


def looks_like_params(args: Sequence[Sequence[Token]]) -> bool:
    """Whether an argument list is a parameter list (`int nid, u64 start`), not a call's."""
    for arg in args:
        words = [t for t in arg if t.kind == "ident"]
        if not words:
            continue
        if arg[0].kind == "ident" and arg[0].text in TYPE_KEYWORDS:
            return True
        if arg[0].kind == "punct" and arg[0].text == "...":
            return True
        for first, second in pairwise(_outside_brackets(arg)):
            if (first.kind == "ident" and second.kind == "ident"
                    and first.text not in _EXPRESSION_KEYWORDS):
                return True
    return False


def _outside_brackets(tokens: Sequence[Token]) -> list[Token]:
    """TOKENS not inside brackets: `(struct s *)p` keeps only the brackets and `p`."""
    kept, depth = [], 0
    for token in tokens:
        if token.kind == "punct" and token.text in _CLOSERS:
            depth -= 1
        if depth == 0:
            kept.append(token)
        if token.kind == "punct" and token.text in _OPENERS:
            depth += 1
    return kept
