"""What the caller check finds: prototypes, findings, the series' changed API, the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kseries.kernel.ctokens import CallSite, Structure, Token

Severity = Literal["error", "warning"]
CALL_KINDS = ("call", "macro_call")
# Words of a declaration that are not its type: `const mhp_t flags` is of type mhp_t.
QUALIFIERS = frozenset({"const", "volatile", "static", "extern", "register", "__maybe_unused",
                        "__read_mostly", "__ro_after_init", "__initdata", "__always_unused"})


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
            words = [w for w in param.type.split() if w not in QUALIFIERS]
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


@dataclass(frozen=True)
class SourceFile:
    """One candidate file, read and tokenized once."""

    path: str
    tokens: tuple[Token, ...]
    structure: Structure
    sites: tuple[CallSite, ...]
