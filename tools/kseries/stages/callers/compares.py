"""Invariant (b): a file must not decide driver-managed state by comparing resource names."""

from __future__ import annotations

from collections.abc import Sequence

from kseries.kernel.ctokens import Structure, Token, join_tokens, next_code, prev_code, split_args
from kseries.stages.callers.model import Finding, SourceFile
from kseries.stages.callers.spec import CallerCheckSpec

# Functions that compare a resource name; using one to decide driver-managed state is
# what the series replaces with a flag.
NAME_COMPARES = ("strcmp", "strncmp", "strstr", "str_has_prefix", "strstarts", "strcasecmp",
                 "strncasecmp")
RESOURCE_NAME_IDENTS = frozenset({"resource_name", "res_name"})
# What deciding driver-managed state looks like in the code a name comparison controls.
DRIVER_MANAGED_EFFECTS = ("firmware_map_add_hotplug", "firmware_map_remove")


def check_name_compares(source: SourceFile, spec: CallerCheckSpec) -> tuple[list[Finding],
                                                                               list[str]]:
    """Invariant (b): no strcmp() & co on a resource name that decides driver-managed state.

    Returns findings and notes (comparisons that only validate the name's format).
    """
    tokens, structure = source.tokens, source.structure
    findings, notes = [], []
    wanted = set(NAME_COMPARES)
    for index, token in enumerate(tokens):
        if token.kind != "ident" or token.text not in wanted:
            continue
        opener = next_code(tokens, index)
        if opener is None or tokens[opener].text != "(" or opener not in structure.match:
            continue
        closer = structure.match[opener]
        names = [join_tokens(a) for a in split_args(tokens, opener, closer) if _names_resource(a)]
        if not names or structure.depth[index] == 0:
            continue
        args = ", ".join(join_tokens(a) for a in split_args(tokens, opener, closer))
        call_text = f"{token.text}({args})"
        where = f"{source.path}:{token.line}"
        effect = _decision(tokens, index, structure)
        flag = spec.required_flag or f"a {spec.flags_prefix}* flag"
        function = structure.function[index]
        if effect == "validates":
            notes.append(f"{where}: {token.text}() on {names[0]} only validates the name "
                         "(its branch returns an error)")
        elif effect == "unknown":
            findings.append(Finding(source.path, token.line, function, call_text, "warning",
                                    f"{token.text}() on the resource name {names[0]}: cannot "
                                    "tell whether it decides driver-managed state", "name-strcmp"))
        else:
            findings.append(Finding(source.path, token.line, function, call_text, "error",
                                    f"{token.text}() on the resource name {names[0]} decides "
                                    f"driver-managed state ({effect}); test {flag} in the "
                                    f"{spec.flags_type} flags instead", "name-strcmp"))
    return findings, notes


def _names_resource(arg: Sequence[Token]) -> bool:
    for index, token in enumerate(arg):
        if token.kind == "ident" and token.text in RESOURCE_NAME_IDENTS:
            return True
        if token.text == "name" and index > 0 and arg[index - 1].text in ("->", "."):
            return True
    return False


def _decision(tokens: Sequence[Token], index: int, structure: Structure) -> str:
    """What the comparison at INDEX controls: 'validates', 'unknown' or the effect it decides."""
    opener = _enclosing_condition(tokens, index, structure)
    if opener is None:
        controlled = _statement_tokens(tokens, index)
    else:
        closer = structure.match[opener]
        controlled = _controlled(tokens, closer, structure)
    words = [t.text for t in controlled if t.kind == "ident"]
    for word in words:
        if "DRIVER_MANAGED" in word:
            return f"sets {word}"
        if word in DRIVER_MANAGED_EFFECTS:
            return f"controls {word}()"
    if opener is not None and words[:1] in (["return"], ["goto"]) and (
            words[0] == "goto" or any(t.text == "-" for t in controlled[:3])):
        return "validates"
    return "unknown"


def _enclosing_condition(tokens: Sequence[Token], index: int,
                         structure: Structure) -> int | None:
    """The '(' of the `if (`/`while (` whose condition holds token INDEX, if any."""
    position = index - 1
    while position >= 0:
        token = tokens[position]
        if token.kind == "punct":
            if token.text in (")", "]") and position in structure.match:
                position = structure.match[position] - 1
                continue
            if token.text == "(":
                before = prev_code(tokens, position)
                if before is not None and tokens[before].text in ("if", "while"):
                    return position
            if token.text in (";", "{", "}"):
                return None
        position -= 1
    return None


def _controlled(tokens: Sequence[Token], closer: int, structure: Structure) -> list[Token]:
    """The statement(s) an `if (...)` controls, including an `else` branch."""
    start = next_code(tokens, closer)
    if start is None:
        return []
    end = _statement_end(tokens, start, structure)
    after = next_code(tokens, end)
    if after is not None and tokens[after].text == "else":
        following = next_code(tokens, after)
        if following is not None:
            end = _statement_end(tokens, following, structure)
    return [t for t in tokens[start:end + 1] if t.kind != "directive"]


def _statement_end(tokens: Sequence[Token], start: int, structure: Structure) -> int:
    if tokens[start].text == "{":
        return structure.match.get(start, start)
    position = start
    while position < len(tokens):
        token = tokens[position]
        if token.text in ("(", "[", "{") and position in structure.match:
            position = structure.match[position] + 1
            continue
        if token.text == ";":
            return position
        position += 1
    return len(tokens) - 1


def _statement_tokens(tokens: Sequence[Token], index: int) -> list[Token]:
    start = index
    while start > 0 and tokens[start - 1].text not in (";", "{", "}"):
        start -= 1
    end = index
    while end < len(tokens) - 1 and tokens[end].text != ";":
        end += 1
    return [t for t in tokens[start:end + 1] if t.kind != "directive"]
