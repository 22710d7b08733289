"""The rules on calls (argument count, flags) and the series' invariants over the tree."""

from __future__ import annotations

from collections.abc import Mapping

from kseries.kernel.ctokens import CallSite, tokenize
from kseries.stages.callers.compares import check_name_compares
from kseries.stages.callers.facts import FileFacts, IncludeCache, file_facts
from kseries.stages.callers.flags import FlagScope, includes_flag, judge_flags, unproven_member
from kseries.stages.callers.model import CALL_KINDS, Finding, Prototype, Severity, SourceFile
from kseries.stages.callers.spec import CallerCheckSpec


def check_call(call: CallSite, prototype: Prototype, facts: FileFacts, spec: CallerCheckSpec,
               source: SourceFile, headers: IncludeCache) -> list[Finding]:
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
    if unproven_member(verdict):
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


def check_invariants(sources: Mapping[str, SourceFile], facts: dict[str, FileFacts],
                     prototypes: Mapping[str, Prototype], spec: CallerCheckSpec
                     ) -> tuple[list[Finding], list[str]]:
    """Both invariants of the series; FACTS gains the facts of the required-flag files.

    Returns findings and notes (name comparisons that only validate a name).
    """
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
