"""Judging a flags expression: only PREFIX constants, `|`, () and names of the flags type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kseries.kernel.ctokens import Token, analyse, join_tokens, tokenize
from kseries.stages.callers.facts import FileFacts
from kseries.stages.callers.spec import CallerCheckSpec


def _strip_parens(tokens: Sequence[Token]) -> Sequence[Token]:
    while len(tokens) >= 2 and tokens[0].text == "(" and tokens[-1].text == ")" \
            and analyse(tokens).match.get(0) == len(tokens) - 1:
        tokens = tokens[1:-1]
    return tokens


def _top_level(tokens: Sequence[Token], texts: Sequence[str]) -> list[int]:
    """Indices of tokens in TEXTS outside any brackets."""
    found, depth = [], 0
    for index, token in enumerate(tokens):
        if token.kind != "punct":
            continue
        if token.text in "([{":
            depth += 1
        elif token.text in ")]}":
            depth -= 1
        elif depth == 0 and token.text in texts:
            found.append(index)
    return found


def _ternary(tokens: Sequence[Token]) -> tuple[int, int] | None:
    marks = _top_level(tokens, ("?", ":"))
    if not marks or tokens[marks[0]].text != "?":
        return None
    nesting = 0
    for index in marks:
        nesting += 1 if tokens[index].text == "?" else -1
        if nesting == 0:
            return marks[0], index
    return None


@dataclass(frozen=True)
class FlagVerdict:
    """Integer literals and unprovable parts found in a flags expression."""

    literals: tuple[str, ...] = ()
    unproven: tuple[str, ...] = ()

    def __add__(self, other: FlagVerdict) -> FlagVerdict:
        return FlagVerdict(self.literals + other.literals, self.unproven + other.unproven)


@dataclass(frozen=True)
class FlagScope:
    """Names declared with the flags type, and the file's macros (expanded when used)."""

    names: frozenset[str]
    macros: Mapping[str, tuple[int, tuple[Token, ...]]] = field(default_factory=dict)
    expanding: frozenset[str] = frozenset()


def judge_flags(tokens: Sequence[Token], scope: FlagScope, spec: CallerCheckSpec
                ) -> FlagVerdict:
    """Whether a flags expression uses only PREFIX constants, `|`, (), and names of the type.

    A ternary is fine when both branches are (its condition is anything); a cast to the
    flags type of a fine expression is fine; a macro of the file is judged by its body;
    an integer literal anywhere else is reported.
    """
    tokens = _strip_parens(tokens)
    if not tokens:
        return FlagVerdict(unproven=("(nothing)",))
    if (ternary := _ternary(tokens)) is not None:
        question, colon = ternary
        return (judge_flags(tokens[question + 1:colon], scope, spec)
                + judge_flags(tokens[colon + 1:], scope, spec))
    bars = _top_level(tokens, ("|",))
    if bars:
        verdict = FlagVerdict()
        for start, end in zip([-1, *bars], [*bars, len(tokens)], strict=True):
            verdict = verdict + judge_flags(tokens[start + 1:end], scope, spec)
        return verdict
    return _judge_operand(tokens, scope, spec)


def _judge_operand(tokens: Sequence[Token], scope: FlagScope, spec: CallerCheckSpec
                   ) -> FlagVerdict:
    literals = tuple(t.text for t in tokens if t.kind == "number")
    text = join_tokens(tokens)
    if tokens[0].text == "(":
        closer = analyse(tokens).match.get(0, 0)
        inner = [t.text for t in tokens[1:closer] if t.text not in ("__force", "const")]
        if inner == [spec.flags_type] and closer + 1 < len(tokens):
            return judge_flags(tokens[closer + 1:], scope, spec)
    if len(tokens) == 1 and tokens[0].kind == "ident":
        word = tokens[0].text
        if word.startswith(spec.flags_prefix) or word in scope.names:
            return FlagVerdict()
        if word in scope.macros and word not in scope.expanding:
            inner_scope = FlagScope(scope.names, scope.macros, scope.expanding | {word})
            return judge_flags(scope.macros[word][1], inner_scope, spec)
    elif _is_member_chain(tokens) and tokens[-1].text in scope.names:
        return FlagVerdict()
    return FlagVerdict(literals, () if literals and len(tokens) == 1 else (text,))


def _is_member_chain(tokens: Sequence[Token]) -> bool:
    """`a->b.c`: identifiers joined by -> or ."""
    if len(tokens) < 3 or len(tokens) % 2 == 0:
        return False
    return all(t.kind == "ident" for t in tokens[::2]) and all(
        t.text in ("->", ".") for t in tokens[1::2])


def unproven_member(verdict: FlagVerdict) -> bool:
    """Whether an unproven part is a member access (`dev->cfg.flags`): a local header may
    declare that member with the flags type."""
    return any(_is_member_chain(_strip_parens(tokenize(u))) for u in verdict.unproven)


def includes_flag(tokens: Sequence[Token], flag: str, facts: FileFacts,
                  seen: frozenset[str] = frozenset()) -> str | None:
    """How TOKENS include FLAG: 'directly', 'via macro X (line N)', 'via mhp_flags (line N)'."""
    words = [t.text for t in tokens if t.kind == "ident"]
    if flag in words:
        return "directly"
    for word in words:
        if word in seen:
            continue
        if word in facts.macros:
            line, body = facts.macros[word]
            if includes_flag(body, flag, facts, seen | {word}) is not None:
                return f"via macro {word} (line {line})"
        for line, value in facts.assignments.get(word, ()):
            if includes_flag(value, flag, facts, seen | {word}) is not None:
                return f"via {word} (assigned at line {line})"
    return None
