"""Call sites of named functions in tokenized C: calls, definitions, declarations, address
uses, calls inside macro bodies and exports, each with the function it is in.

Built on ctokens' tokens and bracket structure; like it, this is not a C parser but knows
enough of C's shape to tell these uses apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from kseries.kernel.ctokens import (
    CallSite,
    Kind,
    Structure,
    Token,
    analyse,
    is_punct,
    join_tokens,
    looks_like_params,
    next_code,
    prev_code,
    split_args,
    tokenize,
)

_FUNCTION_MACRO_RE = re.compile(r"#\s*define\s+\w+\(")
_EXPORT_RE = re.compile(r"^EXPORT_\w*SYMBOL\w*$")


def _statement_has_extern(tokens: Sequence[Token], index: int) -> bool:
    for position in range(index - 1, max(index - 60, -1), -1):
        token = tokens[position]
        if token.kind == "punct" and token.text in (";", "{", "}"):
            return False
        if token.kind == "ident" and token.text == "extern":
            return True
    return False


# --- classification -----------------------------------------------------------------------


def _after_params(tokens: Sequence[Token], opener: int, closer: int,
                  match: dict[int, int]) -> Kind:
    """'definition' if the file-scope NAME(...) at OPENER..CLOSER has a body, else 'declaration'."""
    args = split_args(tokens, opener, closer)
    identifiers_only = all(len(a) == 1 and a[0].kind == "ident" for a in args) and bool(args)
    index = next_code(tokens, closer)
    while index is not None:
        token = tokens[index]
        if is_punct(token, "{"):
            return "definition"
        if token.kind != "ident":
            break
        after = next_code(tokens, index)
        if after is not None and is_punct(tokens[after], "(") and after in match:
            index = next_code(tokens, match[after])  # an attribute with arguments
            continue
        if identifiers_only:  # K&R: `f(a, b) int a; char *b; {`
            return "definition" if _kr_body_follows(tokens, index) else "declaration"
        index = after
    return "declaration"


def _kr_body_follows(tokens: Sequence[Token], index: int) -> bool:
    for token in tokens[index:index + 200]:
        if is_punct(token, "{"):
            return True
        if token.kind not in ("ident", "number", "directive") and token.text not in (
                ";", ",", "*", "[", "]"):
            return False
    return False


def _call_site(tokens: Sequence[Token], index: int, structure: Structure, file: str,
               opener: int) -> CallSite | None:
    """The occurrence NAME( at INDEX: a call, definition or declaration."""
    closer = structure.match.get(opener)
    if closer is None or closer < opener:
        return None
    name = tokens[index].text
    args = split_args(tokens, opener, closer)
    depth = structure.depth[index]
    function = structure.function[index]
    kind: Kind
    if depth == 0:
        kind = _after_params(tokens, opener, closer, structure.match)
        function = name if kind == "definition" else ""
    elif _statement_has_extern(tokens, index) or looks_like_params(args):
        kind = "declaration"
    else:
        kind = "call"
    declaring = kind in ("definition", "declaration")
    texts = tuple(join_tokens(a, declaration=declaring) for a in args)
    return CallSite(file, tokens[index].line, function, name, f"{name}({', '.join(texts)})",
                    texts, kind, tokens[closer].line)


def _other_use(tokens: Sequence[Token], index: int, structure: Structure,
               file: str) -> CallSite:
    """NAME used without a call: `&name`, `fn = name;`, `EXPORT_SYMBOL(name)`."""
    token = tokens[index]
    before = prev_code(tokens, index)
    after = next_code(tokens, index)
    if before is not None and after is not None and is_punct(tokens[before], "(") \
            and is_punct(tokens[after], ")"):
        macro = prev_code(tokens, before)
        if macro is not None and _EXPORT_RE.match(tokens[macro].text):
            text = f"{tokens[macro].text}({token.text})"
            return CallSite(file, token.line, "", token.text, text, (), "export", token.line)
    amp = before is not None and is_punct(tokens[before], "&")
    text = f"&{token.text}" if amp else token.text
    return CallSite(file, token.line, structure.function[index], token.text, text, (),
                    "address", token.line)


def _wanted_at(tokens: Sequence[Token], index: int, wanted: frozenset[str]) -> bool:
    token = tokens[index]
    if token.kind != "ident" or token.text not in wanted:
        return False
    before = prev_code(tokens, index)
    if before is None:
        return True
    prev = tokens[before]
    # s->add_memory is a member; `struct add_memory` a tag; neither is our function.
    return not ((prev.kind == "punct" and prev.text in (".", "->"))
                or (prev.kind == "ident" and prev.text in ("struct", "union", "enum")))


def _sites(tokens: Sequence[Token], wanted: frozenset[str], file: str, structure: Structure,
           only_file_scope: bool = False) -> list[CallSite]:
    sites: list[CallSite] = []
    for index, token in enumerate(tokens):
        if token.kind == "directive":
            if not only_file_scope or structure.depth[index] == 0:
                sites.extend(_macro_sites(token, wanted, file))
            continue
        if only_file_scope and (token.kind != "ident" or structure.depth[index] != 0):
            continue
        if not _wanted_at(tokens, index, wanted):
            continue
        after = next_code(tokens, index)
        if after is not None and is_punct(tokens[after], "("):
            site = _call_site(tokens, index, structure, file, after)
            if site is not None:
                sites.append(site)
        elif not only_file_scope:
            sites.append(_other_use(tokens, index, structure, file))
    return sites


def _macro_sites(directive: Token, wanted: frozenset[str], file: str) -> list[CallSite]:
    """Occurrences in a #define: the macro itself (a definition) and uses in its body."""
    body = directive.body
    if len(body) < 2 or body[0].text != "define" or body[1].kind != "ident":
        return []
    macro = body[1].text
    if macro not in wanted and not any(t.text in wanted for t in body[2:]):
        return []
    start, sites = 2, []
    if _FUNCTION_MACRO_RE.match(directive.text):
        structure = analyse(body)
        closer = structure.match.get(2, len(body) - 1)
        start = closer + 1
        if macro in wanted:
            params = tuple(join_tokens(a) for a in split_args(body, 2, closer))
            sites.append(CallSite(file, body[1].line, macro, macro,
                                  f"#define {macro}({', '.join(params)})", params, "definition",
                                  body[closer].line))
    elif macro in wanted:
        sites.append(CallSite(file, body[1].line, macro, macro, f"#define {macro}", (),
                              "definition", body[1].line))
    rest = body[start:]
    structure = analyse(rest)
    for index, token in enumerate(rest):
        if not _wanted_at(rest, index, wanted):
            continue
        after = next_code(rest, index)
        if after is not None and is_punct(rest[after], "(") and after in structure.match:
            closer = structure.match[after]
            args = tuple(join_tokens(a) for a in split_args(rest, after, closer))
            sites.append(CallSite(file, token.line, macro, token.text,
                                  f"{token.text}({', '.join(args)})", args, "macro_call",
                                  rest[closer].line))
        else:
            use = _other_use(rest, index, structure, file)
            sites.append(CallSite(file, use.line, macro, use.name, use.text, (), use.kind,
                                  use.line))
    return sites


def find_calls_in(tokens: Sequence[Token], names: Iterable[str], file: str = "",
                  structure: Structure | None = None) -> list[CallSite]:
    """Every occurrence of NAMES in TOKENS (see find_calls)."""
    structure = structure or analyse(tokens)
    return _sites(tokens, frozenset(names), file, structure)


def find_calls(src: str, names: Iterable[str], file: str = "") -> list[CallSite]:
    """Every occurrence of NAMES in C source SRC, classified.

    kind is `call` (inside a function, incl. static inline ones in headers), `definition`
    (NAME(...) { at file scope, or `#define NAME`), `declaration` (a prototype, `extern`, or
    a parameter list with types), `macro_call` (inside a #define body), `address` (the
    name without a call: `&f`, `fn = f;`, `g(f)`) or `export` (EXPORT_SYMBOL*(f)).
    """
    return find_calls_in(tokenize(src), names, file)


def signatures_in(tokens: Sequence[Token], start_depth: int = 0,
                  start_function: str = "") -> list[CallSite]:
    """Every file-scope definition and declaration of any function or macro in TOKENS."""
    structure = analyse(tokens, start_depth, start_function)
    every = frozenset(t.text for t in tokens if t.kind == "ident") | frozenset(
        t.body[1].text for t in tokens if t.kind == "directive" and len(t.body) > 1)
    return [s for s in _sites(tokens, every, "", structure, only_file_scope=True)
            if s.kind in ("definition", "declaration")]
