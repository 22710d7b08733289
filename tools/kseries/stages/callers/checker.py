"""Caller conversion checker: does every caller of an API family pass proper flags?

For a family like add_memory()/__add_memory()/add_memory_resource()/
add_memory_driver_managed() with an `mhp_t` flags parameter, we find every call in the
tree (git grep for candidate files, then our own tokenizer, ctokens.py), and check that
it passes as many arguments as the prototype takes and that its flags argument is built
only from MHP_* constants, `|`, parentheses and things declared `mhp_t`. Invariants of
the series are checked too: some files must pass a given flag, and a file must no longer
decide driver-managed state by comparing resource names. A second opinion from
Coccinelle (spatch) is available, outside the fast path.
"""

from __future__ import annotations

import email
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk, PatchSet

from kseries.core.errors import KseriesError
from kseries.core.proc import command_line, run
from kseries.kernel.ctokens import (
    TYPE_KEYWORDS,
    CallSite,
    Structure,
    Token,
    analyse,
    find_calls_in,
    function_spans,
    join_tokens,
    looks_like_params,
    next_code,
    prev_code,
    signatures_in,
    split_args,
    tokenize,
)
from kseries.kernel.kbuild import KbuildTree
from kseries.series.config import Api

__all__ = [
    "CallSite", "CallerCheckSpec", "CallerReport", "ChangedApi", "ChangedFunction", "Finding",
    "Param", "Prototype", "SecondOpinion", "candidate_files", "changed_api",
    "check_callers", "cross_check", "second_opinion", "spec_from_api",
]

Severity = Literal["error", "warning"]
CALL_KINDS = ("call", "macro_call")
# Functions that compare a resource name; using one to decide driver-managed state is
# what the series replaces with a flag.
NAME_COMPARES = ("strcmp", "strncmp", "strstr", "str_has_prefix", "strstarts", "strcasecmp",
                 "strncasecmp")
RESOURCE_NAME_IDENTS = frozenset({"resource_name", "res_name"})
# What deciding driver-managed state looks like in the code a name comparison controls.
DRIVER_MANAGED_EFFECTS = ("firmware_map_add_hotplug", "firmware_map_remove")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUALIFIERS = frozenset({"const", "volatile", "static", "extern", "register", "__maybe_unused",
                         "__read_mostly", "__ro_after_init", "__initdata", "__always_unused"})
_MBOX_FROM_RE = re.compile(r"^From \S+ .*$", re.MULTILINE)
_DEFINE_RE = re.compile(r"^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)")


# --- input --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallerCheckSpec:
    """What to check: the family, its flags type and prefix, and the series' invariants."""

    family: tuple[str, ...]
    flags_type: str = "mhp_t"
    flags_prefix: str = "MHP_"
    # (a) calls in these files must pass required_flag, directly or via a variable/macro.
    required_flag_files: tuple[str, ...] = ()
    required_flag: str = ""
    # (b) this file must not decide driver-managed state with strcmp() on a resource name.
    no_name_strcmp_file: str = ""

    def validate(self) -> None:
        names = (*self.family, self.flags_type, *([self.required_flag] * bool(self.required_flag)))
        bad = [n for n in names if not _IDENT_RE.match(n)]
        if bad or not self.family:
            raise KseriesError(f"caller check: {bad or 'an empty family'} is not a list of C "
                               "identifiers; fix [api] in series.toml")
        if self.required_flag_files and not self.required_flag:
            raise KseriesError("caller check: required_flag_files given without required_flag; "
                               "set 'flag' in the caller-passes-flag invariant")


def spec_from_api(api: Api) -> CallerCheckSpec:
    """The check described by series.toml's [api] table."""
    files: list[str] = []
    flags: set[str] = set()
    strcmp_files: list[str] = []
    for invariant in api.invariants:
        if invariant.kind == "caller-passes-flag":
            if not invariant.flag:
                raise KseriesError("series.toml: a caller-passes-flag invariant needs 'flag'; "
                                   "add flag = \"MHP_...\"")
            files.extend(invariant.files)
            flags.add(invariant.flag)
        elif invariant.kind == "no-name-strcmp":
            strcmp_files.extend(invariant.files)
        else:
            raise KseriesError(f"series.toml: unknown invariant kind '{invariant.kind}'; use "
                               "caller-passes-flag or no-name-strcmp")
    if len(flags) > 1 or len(strcmp_files) > 1:
        raise KseriesError("series.toml: the caller checker supports one caller-passes-flag flag "
                           "and one no-name-strcmp file; merge the invariants")
    spec = CallerCheckSpec(api.family, api.flags_type, api.flags_prefix, tuple(files),
                           next(iter(flags), ""), strcmp_files[0] if strcmp_files else "")
    spec.validate()
    return spec


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    type: str
    name: str


@dataclass(frozen=True)
class Prototype:
    name: str
    file: str
    line: int
    params: tuple[Param, ...]

    @property
    def text(self) -> str:
        inner = ", ".join(_declarator(p) for p in self.params)
        return f"{self.name}({inner or 'void'})"

    def flag_index(self, flags_type: str) -> int | None:
        """Index of the parameter whose type is FLAGS_TYPE (qualifiers aside), if any."""
        for index, param in enumerate(self.params):
            words = [w for w in param.type.split() if w not in _QUALIFIERS]
            if words == [flags_type]:
                return index
        return None


def _declarator(param: Param) -> str:
    if not param.name:
        return param.type
    return f"{param.type}{'' if param.type.endswith('*') else ' '}{param.name}"


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    function: str
    call_text: str
    severity: Severity
    message: str
    rule: str = ""


@dataclass(frozen=True)
class ChangedFunction:
    """A function or macro whose signature or body a series touches."""

    name: str
    file: str
    kind: Literal["function", "macro"]
    old_params: tuple[str, ...] | None
    new_params: tuple[str, ...] | None
    signature_touched: bool
    body_touched: bool

    @property
    def params_changed(self) -> bool:
        return (self.old_params is not None and self.new_params is not None
                and self.old_params != self.new_params)


@dataclass(frozen=True)
class ChangedApi:
    functions: tuple[ChangedFunction, ...]
    new_constants: tuple[str, ...]
    removed_constants: tuple[str, ...]

    def function(self, name: str) -> ChangedFunction | None:
        return next((f for f in self.functions if f.name == name), None)


@dataclass(frozen=True)
class CallerReport:
    calls: tuple[CallSite, ...]
    findings: tuple[Finding, ...]
    changed_api: ChangedApi | None
    duration_s: float
    prototypes: tuple[Prototype, ...] = ()
    uses: tuple[CallSite, ...] = ()  # definitions, declarations, address-of, exports
    files_scanned: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def caller_files(self) -> tuple[str, ...]:
        return tuple(sorted({c.file for c in self.calls}))

    def findings_for(self, call: CallSite) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings
                     if (f.file, f.line, f.call_text) == (call.file, call.line, call.text))

    def status(self, call: CallSite) -> str:
        return "UNCONVERTED" if any(f.severity == "error" for f in self.findings_for(call)) \
            else "converted"

    def to_json(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "files_scanned": list(self.files_scanned),
            "prototypes": [asdict(p) | {"text": p.text} for p in self.prototypes],
            "calls": [asdict(c) | {"status": self.status(c)} for c in self.calls],
            "uses": [asdict(u) for u in self.uses],
            "findings": [asdict(f) for f in self.findings],
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "changed_api": asdict(self.changed_api) if self.changed_api else None,
            "notes": list(self.notes),
        }

    def format_table(self, compiled_by: Mapping[str, Sequence[str]] | None = None) -> str:
        """One row per call (status converted/UNCONVERTED, and with COMPILED_BY the arches
        whose build compiled its file), then findings not on a call."""
        built = compiled_by is not None
        rows = [("location", "function", "callee", "status",
                 *(("built on",) if built else ()), "message")]
        on_calls: set[Finding] = set()
        for call in self.calls:
            found = self.findings_for(call)
            on_calls.update(found)
            message = "; ".join(f"{f.severity}: {f.message}" for f in found)
            arches = (", ".join(compiled_by.get(call.file, [])) or "no arch",) \
                if compiled_by is not None else ()
            rows.append((f"{call.file}:{call.line}", call.function or "-", call.name,
                         self.status(call), *arches, message))
        for finding in self.findings:
            if finding not in on_calls:
                rows.append((f"{finding.file}:{finding.line}", finding.function or "-",
                             _callee(finding.call_text), finding.severity.upper(),
                             *(("-",) if built else ()), finding.message))
        columns = len(rows[0]) - 1
        widths = [max(len(r[i]) for r in rows) for i in range(columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:columns], widths, strict=True))
                 + "  " + r[columns] for r in rows]
        lines.append(f"{len(self.calls)} calls in {len(self.caller_files)} files, "
                     f"{len(self.errors)} errors, {len(self.warnings)} warnings "
                     f"({self.duration_s:.2f}s)")
        return "\n".join(line.rstrip() for line in lines)


def _callee(call_text: str) -> str:
    return call_text.split("(", 1)[0] if call_text else "-"


@dataclass(frozen=True)
class SecondOpinion:
    """Coccinelle's view of the same calls, and where it disagrees with ours."""

    status: Literal["agree", "disagree", "skipped"]
    detail: str
    findings: tuple[Finding, ...] = ()
    command: str = ""
    duration_s: float = 0.0


# --- scanning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """One candidate file, read and tokenized once."""

    path: str
    tokens: tuple[Token, ...]
    structure: Structure
    sites: tuple[CallSite, ...]


def family_pattern(names: Iterable[str]) -> str:
    return "|".join(names)


def candidate_files(tree: Path, names: Sequence[str]) -> list[str]:
    """Files of TREE's working tree that contain one of NAMES as a word (git grep -l -w).

    Documentation/ is prose, and tools/ is user space: both have no kernel callers.
    """
    proc = run(["git", "-C", str(tree), "grep", "-l", "-w", "-E", family_pattern(names),
                "--", "*.c", "*.h", ":(exclude)Documentation/", ":(exclude)tools/"],
               check=False)
    if proc.returncode not in (0, 1):
        raise KseriesError(f"cannot search {tree} with git grep (is it a git checkout?): "
                           f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
    return [line for line in proc.stdout.splitlines() if line]


def read_source(tree: Path, path: str, names: Sequence[str]) -> SourceFile:
    try:
        text = (tree / path).read_text(errors="replace")
    except OSError as err:
        raise KseriesError(f"cannot read {tree / path}: {err.strerror}") from None
    tokens = tokenize(text)
    structure = analyse(tokens)
    return SourceFile(path, tuple(tokens), structure,
                      tuple(find_calls_in(tokens, names, path, structure)))


# --- prototypes ---------------------------------------------------------------------------


def parse_param(text: str) -> Param | None:
    """`const char *resource_name` -> Param('const char *', 'resource_name'); `void` -> None."""
    tokens = tokenize(text)
    if not tokens or [t.text for t in tokens] == ["void"]:
        return None
    for index in range(len(tokens) - 3):  # int (*cb)(int): the name is inside (*...)
        window = [t.text for t in tokens[index:index + 2]]
        if window == ["(", "*"] and tokens[index + 2].kind == "ident":
            return Param(text, tokens[index + 2].text)
    last = tokens[-1]
    idents = [t for t in tokens if t.kind == "ident"]
    if last.kind == "ident" and len(idents) >= 2 and last.text not in TYPE_KEYWORDS:
        return Param(join_tokens(tokens[:-1], declaration=True), last.text)
    return Param(join_tokens(tokens, declaration=True), "")


def prototype_of(site: CallSite) -> Prototype:
    params = tuple(p for p in (parse_param(a) for a in site.args) if p is not None)
    return Prototype(site.name, site.file, site.line, params)


def find_prototypes(sources: Sequence[SourceFile], family: Sequence[str]
                    ) -> tuple[dict[str, Prototype], list[Finding]]:
    """Each family function's prototype: a header declaration first, else a definition."""
    prototypes: dict[str, Prototype] = {}
    findings: list[Finding] = []

    def rank(site: CallSite) -> tuple[int, str, int]:
        header = site.file.endswith(".h")
        return (0 if header and site.kind == "declaration" else 1 if not header else 2,
                site.file, site.line)

    for name in family:
        sites = sorted((s for src in sources for s in src.sites
                        if s.name == name and s.kind in ("declaration", "definition")
                        and not s.text.startswith("#define")), key=rank)
        if not sites:
            findings.append(Finding("", 0, "", name, "error",
                                    f"no prototype or definition of {name}() found", "prototype"))
            continue
        chosen = prototypes[name] = prototype_of(sites[0])
        for other in sites[1:]:
            if len(prototype_of(other).params) != len(chosen.params):
                findings.append(Finding(
                    other.file, other.line, other.function, other.text, "warning",
                    f"{other.kind} of {name}() takes {len(prototype_of(other).params)} "
                    f"parameters, the prototype at {chosen.file}:{chosen.line} "
                    f"{len(chosen.params)}", "prototype"))
    return prototypes, findings


# --- facts about one file -----------------------------------------------------------------


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
        while position is not None and tokens[position].text in _QUALIFIERS:
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


# --- flags expressions --------------------------------------------------------------------


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


# --- checks -------------------------------------------------------------------------------


@dataclass
class _IncludeCache:
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


def check_call(call: CallSite, prototype: Prototype, facts: FileFacts, spec: CallerCheckSpec,
               source: SourceFile, headers: _IncludeCache) -> list[Finding]:
    """Argument count and flags argument of one call."""
    def finding(severity: Severity, message: str, rule: str) -> Finding:
        return Finding(call.file, call.line, call.function, call.text, severity, message, rule)

    if len(call.args) != len(prototype.params):
        return [finding("error", f"passes {len(call.args)} arguments; {prototype.text} at "
                        f"{prototype.file}:{prototype.line} takes {len(prototype.params)}",
                        "arg-count")]
    index = prototype.flag_index(spec.flags_type)
    if index is None:
        return []
    tokens = tokenize(call.args[index])
    verdict = judge_flags(tokens, FlagScope(facts.flag_names, facts.macros), spec)
    if verdict.unproven and any(_is_member_chain(_strip_parens(tokenize(u)))
                                for u in verdict.unproven):
        names = facts.flag_names | headers.names_for(source)
        verdict = judge_flags(tokens, FlagScope(names, facts.macros), spec)
    if verdict.literals:
        return [finding("error", f"passes integer literal {verdict.literals[0]} in the "
                        f"{spec.flags_type} argument `{call.args[index]}`; use "
                        f"{spec.flags_prefix}* constants (e.g. {spec.flags_prefix}NONE)",
                        "flags-literal")]
    if verdict.unproven:
        return [finding("warning", f"cannot prove type: `{verdict.unproven[0]}` in the flags "
                        f"argument is not a {spec.flags_prefix}* constant or declared "
                        f"{spec.flags_type}", "flags-type")]
    return []


def check_assigned_literals(call: CallSite, prototype: Prototype, facts: FileFacts,
                            spec: CallerCheckSpec) -> list[Finding]:
    """A flags variable assigned an integer literal hides the literal from the call."""
    index = prototype.flag_index(spec.flags_type)
    if index is None or len(call.args) != len(prototype.params):
        return []
    words = {t.text for t in tokenize(call.args[index]) if t.kind == "ident"}
    scope = FlagScope(facts.flag_names, facts.macros)
    findings = []
    for word in sorted(words & facts.flag_names):
        for line, value in facts.assignments.get(word, ()):
            literals = judge_flags(value, scope, spec).literals if value else ()
            if literals:
                findings.append(Finding(
                    call.file, call.line, call.function, call.text, "error",
                    f"flags variable {word} is assigned integer literal {literals[0]} at "
                    f"{call.file}:{line}; use {spec.flags_prefix}* constants", "flags-literal"))
    return findings


def check_required_flag(path: str, sources: Mapping[str, SourceFile],
                        facts_of: Mapping[str, FileFacts], prototypes: Mapping[str, Prototype],
                        spec: CallerCheckSpec) -> list[Finding]:
    """Invariant (a): every family call in PATH passes spec.required_flag."""
    flag = spec.required_flag
    source = sources.get(path)
    calls = [s for s in source.sites if s.kind in CALL_KINDS] if source else []
    if not calls:
        return [Finding(path, 0, "", "", "error", f"no call of {'/'.join(spec.family)} found, "
                        f"but the series requires one passing {flag}", "required-flag")]
    findings = []
    for call in calls:
        prototype = prototypes.get(call.name)
        index = prototype.flag_index(spec.flags_type) if prototype else None
        if index is None or index >= len(call.args):
            continue  # reported by the argument checks
        if includes_flag(tokenize(call.args[index]), flag, facts_of[path]) is None:
            findings.append(Finding(call.file, call.line, call.function, call.text, "error",
                                    f"does not pass {flag} (flags: `{call.args[index]}`)",
                                    "required-flag"))
    return findings


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


# --- the whole check ----------------------------------------------------------------------


def scan_tree(tree: Path, spec: CallerCheckSpec) -> dict[str, SourceFile]:
    """Candidate files (plus the invariants' files), each read and tokenized once."""
    if not tree.is_dir():
        raise KseriesError(f"tree {tree} does not exist; pass a Linux source checkout")
    paths = candidate_files(tree, spec.family)
    extra = [p for p in (*spec.required_flag_files, spec.no_name_strcmp_file)
             if p and p not in paths and (tree / p).is_file()]
    return {p: read_source(tree, p, spec.family) for p in (*paths, *extra)}


def _prototype_findings(prototypes: Mapping[str, Prototype], spec: CallerCheckSpec
                        ) -> list[Finding]:
    return [Finding(p.file, p.line, "", p.text, "error", f"{name}() has no {spec.flags_type} "
                    "parameter; callers' flags cannot be checked", "prototype")
            for name, p in prototypes.items() if p.flag_index(spec.flags_type) is None]


@dataclass(frozen=True)
class _Checked:
    calls: list[CallSite]
    uses: list[CallSite]
    findings: list[Finding]
    facts: dict[str, FileFacts]


def _check_sites(tree: Path, sources: Mapping[str, SourceFile],
                 prototypes: Mapping[str, Prototype], spec: CallerCheckSpec) -> _Checked:
    """Check every call; collect the other uses (address-of uses are warnings)."""
    headers = _IncludeCache(tree, spec.flags_type)
    result = _Checked([], [], [], {})
    for path, source in sources.items():
        for site in source.sites:
            if site.kind not in CALL_KINDS:
                result.uses.append(site)
                if site.kind == "address":
                    result.findings.append(Finding(
                        site.file, site.line, site.function, site.text, "warning",
                        f"{site.name} used as a function pointer; calls through it are not "
                        "checked", "address"))
                continue
            result.calls.append(site)
            prototype = prototypes.get(site.name)
            if prototype is None:
                continue
            if path not in result.facts:
                result.facts[path] = file_facts(source, spec.flags_type)
            facts = result.facts[path]
            result.findings.extend(check_call(site, prototype, facts, spec, source, headers))
            result.findings.extend(check_assigned_literals(site, prototype, facts, spec))
    return result


def _check_invariants(sources: Mapping[str, SourceFile], facts: dict[str, FileFacts],
                      prototypes: Mapping[str, Prototype], spec: CallerCheckSpec
                      ) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    for path in spec.required_flag_files:
        if path in sources and path not in facts:
            facts[path] = file_facts(sources[path], spec.flags_type)
        findings.extend(check_required_flag(path, sources, facts, prototypes, spec))
    notes: list[str] = []
    if spec.no_name_strcmp_file in sources:
        found, notes = check_name_compares(sources[spec.no_name_strcmp_file], spec)
        findings.extend(found)
    elif spec.no_name_strcmp_file:
        findings.append(Finding(spec.no_name_strcmp_file, 0, "", "", "error",
                                "file not found in the tree; fix the no-name-strcmp invariant "
                                "in series.toml", "name-strcmp"))
    return findings, notes


def check_callers(tree: Path, spec: CallerCheckSpec, mbox_text: str | None = None
                  ) -> CallerReport:
    """Find and check every caller of spec.family in TREE's working tree.

    With MBOX_TEXT (the series), the report also says what API the series changes.
    """
    spec.validate()
    started = time.monotonic()
    sources = scan_tree(tree, spec)
    prototypes, findings = find_prototypes(list(sources.values()), spec.family)
    if not prototypes:
        raise KseriesError(f"none of {', '.join(spec.family)} is declared in {tree}; check "
                           "[api] family in series.toml, or pass a Linux tree")
    findings.extend(_prototype_findings(prototypes, spec))
    checked = _check_sites(tree, sources, prototypes, spec)
    findings.extend(checked.findings)
    invariant_findings, notes = _check_invariants(sources, checked.facts, prototypes, spec)
    findings.extend(invariant_findings)
    changed = changed_api(mbox_text, spec.flags_prefix) if mbox_text is not None else None
    return CallerReport(
        calls=tuple(sorted(checked.calls, key=lambda c: (c.file, c.line))),
        findings=tuple(sorted(dict.fromkeys(findings), key=lambda f: (f.file, f.line, f.rule))),
        changed_api=changed,
        duration_s=round(time.monotonic() - started, 3),
        prototypes=tuple(prototypes.values()),
        uses=tuple(sorted(checked.uses, key=lambda c: (c.file, c.line))),
        files_scanned=tuple(sources),
        notes=tuple(notes),
    )


# --- what a series changes ----------------------------------------------------------------


def mbox_diffs(mbox_text: str) -> list[str]:
    """The diff part of each message of an mbox (mail headers, log and signature cut off)."""
    starts = [m.start() for m in _MBOX_FROM_RE.finditer(mbox_text)]
    chunks = ([mbox_text[a:b] for a, b in zip(starts, [*starts[1:], len(mbox_text)], strict=True)]
              if starts else [mbox_text])
    diffs = []
    for chunk in chunks:
        body = _message_body(chunk) if starts else chunk
        start = body.find("diff --git ") if body.startswith("diff --git ") else \
            body.find("\ndiff --git ") + 1
        if start <= 0 and not body.startswith("diff --git "):
            continue
        end = body.rfind("\n-- \n")
        diffs.append(body[start:end + 1] if end > start else body[start:])
    return diffs


def _message_body(chunk: str) -> str:
    message = email.message_from_string(chunk.split("\n", 1)[1] if "\n" in chunk else "")
    parts = [p for p in message.walk() if p.get_content_type() == "text/plain"] \
        if message.is_multipart() else [message]
    payload = parts[0].get_payload(decode=True) if parts else b""
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(parts[0].get_content_charset() or "utf-8", errors="replace")


@dataclass(frozen=True)
class _SideChange:
    name: str
    kind: Literal["function", "macro"]
    params: tuple[str, ...] | None
    signature: bool
    body: bool


def changed_api(mbox_text: str, flags_prefix: str = "MHP_") -> ChangedApi:
    """Functions and macros whose signature or body the series touches, and new constants."""
    collected: dict[tuple[str, str], list[tuple[_SideChange | None, _SideChange | None]]] = {}
    added: dict[str, int] = {}
    for number, diff in enumerate(mbox_diffs(mbox_text), start=1):
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


# --- cross-check against the builds -------------------------------------------------------


def cross_check(report: CallerReport, compiled_by: Mapping[str, Sequence[str]],
                tree: Path) -> list[Finding]:
    """Warn about caller files that no architecture compiled, naming their gating symbols.

    COMPILED_BY maps a caller file to the arches whose build compiled it. Headers are not
    compiled on their own and are skipped.
    """
    kbuild = KbuildTree(tree)
    findings = []
    for path in report.caller_files:
        if path.endswith(".h") or compiled_by.get(path):
            continue
        try:
            symbols = kbuild.gating(path).symbols
            gate = ", ".join(symbols) if symbols else "nothing (always built)"
        except KseriesError as err:
            gate = f"unknown ({err})"
        calls = [c for c in report.calls if c.file == path]
        first = calls[0]
        findings.append(Finding(path, first.line, first.function, first.text, "warning",
                                f"no arch build compiled this caller file ({len(calls)} calls); "
                                f"it is gated by {gate}", "not-compiled"))
    return findings


# --- second opinion -----------------------------------------------------------------------


# Kernel macros Coccinelle 1.1 cannot parse on its own (`scoped_guard(...) { }` makes it
# give up on the whole function).
SPATCH_MACROS = (
    "#define scoped_guard(_name, args...) for (;;)\n"
    "#define scoped_cond_guard(_name, _fail, args...) for (;;)\n"
)


def semantic_patch(family: Sequence[str]) -> str:
    """SmPL that prints file, line and name of every call of FAMILY."""
    names = "|".join(family)
    return (
        "@r@\n"
        f'identifier f =~ "^({names})$";\n'
        "expression list es;\n"
        "position p;\n"
        "@@\n"
        "f@p(es)\n\n"
        "@script:python@\n"
        "f << r.f;\n"
        "p << r.p;\n"
        "@@\n"
        'print("KSERIES\\t%s\\t%s\\t%s" % (p[0].file, p[0].line, f))\n'
    )


def second_opinion(report: CallerReport, tree: Path, spec: CallerCheckSpec) -> SecondOpinion:
    """Run Coccinelle on the caller files and compare its calls with ours.

    Disagreements become warnings. Coccinelle parses real C, so it may differ on calls
    in macro bodies and in code it cannot parse; they are reported, not hidden.
    """
    if shutil.which("spatch") is None:
        return SecondOpinion("skipped", "skipped: spatch not installed")
    files = report.caller_files
    if not files:
        return SecondOpinion("agree", "no caller files to check")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kseries-cocci-") as scratch:
        sp_file = Path(scratch) / "family.cocci"
        sp_file.write_text(semantic_patch(spec.family))
        macro_file = Path(scratch) / "macros.h"
        macro_file.write_text(SPATCH_MACROS)
        cmd = ["spatch", "--sp-file", str(sp_file), "--macro-file", str(macro_file),
               "--very-quiet", "--no-includes", "--no-show-diff", *files]
        proc = run(cmd, cwd=tree, check=False)
    theirs = _parse_spatch(proc.stdout, tree)
    ours = {(c.file, c.line, c.name) for c in report.calls}
    findings = []
    for file, line, name in sorted(ours - theirs):
        call = next(c for c in report.calls if (c.file, c.line, c.name) == (file, line, name))
        why = " (inside a macro body)" if call.kind == "macro_call" else ""
        findings.append(Finding(file, line, call.function, call.text, "warning",
                                f"spatch did not find this call{why}", "second-opinion"))
    for file, line, name in sorted(theirs - ours):
        findings.append(Finding(file, line, "", name, "warning",
                                f"spatch found a call of {name}() the tokenizer did not",
                                "second-opinion"))
    if proc.returncode != 0 and not theirs:
        detail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        findings.append(Finding("", 0, "", "", "warning", f"spatch failed (exit "
                                f"{proc.returncode}): {detail[0]}", "second-opinion"))
    status: Literal["agree", "disagree"] = "disagree" if findings else "agree"
    return SecondOpinion(status, f"spatch found {len(theirs)} calls, the tokenizer "
                         f"{len(ours)}; {len(findings)} disagreements", tuple(findings),
                         command_line(cmd, tree), round(time.monotonic() - started, 3))


def _parse_spatch(output: str, tree: Path) -> set[tuple[str, int, str]]:
    found = set()
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "KSERIES" and parts[2].isdigit():
            path = Path(parts[1])
            relative = str(path.relative_to(tree)) if path.is_absolute() else parts[1]
            found.add((relative, int(parts[2]), parts[3]))
    return found
