"""Caller conversion check: does every caller of an API family pass proper flags?

For a family like add_memory()/__add_memory()/add_memory_resource()/
add_memory_driver_managed() with an `mhp_t` flags parameter, we find every call in the
tree (git grep for candidate files, then our own tokenizer, ctokens.py), and check that
it passes as many arguments as the prototype takes and that its flags argument is built
only from MHP_* constants, `|`, parentheses and things declared `mhp_t`. Invariants of
the series are checked too: some files must pass a given flag, and a file must no longer
decide driver-managed state by comparing resource names. A second opinion from
Coccinelle (spatch, in spatch.py) is available, outside the fast path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.core.errors import KseriesError
from kseries.kernel.ctokens import CallSite
from kseries.kernel.kbuild import KbuildTree
from kseries.stages.callers.api import changed_api
from kseries.stages.callers.facts import FileFacts, IncludeCache, file_facts
from kseries.stages.callers.model import CALL_KINDS, CallerReport, Finding, Prototype, SourceFile
from kseries.stages.callers.rules import check_assigned_literals, check_call, check_invariants
from kseries.stages.callers.scan import find_prototypes, scan_tree
from kseries.stages.callers.spec import CallerCheckSpec


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
    headers = IncludeCache(tree, spec.flags_type)
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


def check_callers(tree: Path, spec: CallerCheckSpec, diffs: Sequence[str] | None = None
                  ) -> CallerReport:
    """Find and check every caller of spec.family in TREE's working tree.

    With DIFFS (the diff of each patch of the series, see series.mbox.Patch.diff), the
    report also says what API the series changes.
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
    invariant_findings, notes = check_invariants(sources, checked.facts, prototypes, spec)
    findings.extend(invariant_findings)
    changed = changed_api(diffs, spec.flags_prefix) if diffs is not None else None
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
