"""vmtest results: the guest's TAP, the addresses it reported, a host-side recheck of every
verdict, and the series run side by side with the base run as report checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from kseries.core.report import Check, Status
from kseries.kernel.ktap import Ktap, TestResult
from kseries.kernel.qemu import MIB, GuestRun, Usage

DATA_RE = re.compile(r"^vmtest-(range|segment) (\S+) 0x([0-9a-f]+)-0x([0-9a-f]+) ?(.*)$")


@dataclass(frozen=True)
class Span:
    """An inclusive physical address range the guest reported."""

    kind: str  # "range" or "segment"
    set: str
    start: int
    end: int
    label: str

    def overlaps(self, other: Span) -> bool:
        return self.start <= other.end and other.start <= self.end

    def __str__(self) -> str:
        label = f" {self.label}" if self.label else ""
        return f"{self.start:#x}-{self.end:#x}{label}"


@dataclass(frozen=True)
class Rule:
    """How the host rechecks a test: SET must avoid virtio-mem ('disjoint') or cover it.

    Virtio-mem is what the phase's iomem_virtio_mem test printed (the plugged memory; for a
    capture kernel, what the crashed kernel printed last), or, where the test printed a
    "virtio_mem" set itself (a kernel after a kexec reboot: the device region), that.
    """

    check: str
    set: str
    relation: str  # "disjoint" | "covers"
    # the set the test printed as virtio-mem's own, when it has one (else the phase's)
    against: str = "virtio_mem"


RULES: tuple[Rule, ...] = (
    Rule("memmap_excludes_virtio_mem", "memmap", "disjoint"),
    Rule("memmap_excludes_virtio_mem", "boot_memmap", "disjoint"),
    Rule("memmap_excludes_virtio_mem", "memblock", "disjoint"),
    Rule("iomem_no_plain_ram_in_device", "iomem_system_ram", "disjoint"),
    Rule("kexec_load_segments", "kexec_load", "disjoint"),
    Rule("kexec_load_memmap", "kexec_load_memmap", "disjoint"),
    Rule("kexec_file_segments", "kexec_file", "disjoint"),
    # what a kexec -p dump must cover is read from sysfs (online memory blocks in the
    # device region): kexec-tools takes its ranges from /proc/iomem's names
    Rule("kdump_dumps_virtio_mem", "kdump_pt_load", "covers", against="online_device_blocks"),
    Rule("vmcore_covers_virtio_mem", "vmcore_pt_load", "covers"),
)
READS_CHECK = "vmcore_reads_plugged"

# Failures that are user space's, known and outside the series: the check stays visible
# as a warning with the reason instead of failing the stage. Keyed by arch, then
# PHASE.CHECK (or *.CHECK for every phase).
ARM64_KDUMP_LOAD = ("kexec-tools (2.0.25 here, and its HEAD: crashdump-arm64.c matches "
                    "\"System RAM\\n\" exactly) leaves driver-managed memory out of the ELF "
                    "headers of a kexec_load (kexec -p) capture kernel on arm64; x86 dumps any "
                    "\"System RAM\" since kexec-tools 2.0.22 (717585968d64). kexec -s -p "
                    "(kdump_file) dumps it")
KNOWN_LIMITS: dict[str, dict[str, str]] = {
    "arm64": {"*.kdump_dumps_virtio_mem": ARM64_KDUMP_LOAD,
              "kdump_load.vmcore_covers_virtio_mem": ARM64_KDUMP_LOAD,
              "kdump_load.vmcore_reads_plugged": ARM64_KDUMP_LOAD},
}


def known_limit(arch: str, name: str) -> str | None:
    """Why the check NAME (PHASE.CHECK) is expected to fail on ARCH, if it is."""
    limits = KNOWN_LIMITS.get(arch, {})
    return limits.get(name) or limits.get(f"*.{name.split('.', 1)[-1]}")


def as_known(check: Check, reason: str) -> Check:
    if check.status != "fail":
        return check
    return replace(check, status="warn", summary=f"known limitation, not the series': {reason}"
                   f" ({check.summary})")


def verdict_of(result: TestResult) -> Status:
    """A guest test's status in the report: KTAP's mapped (ktap.OUTCOME), where a test that
    never finished (error: crash or timeout) fails its check."""
    outcome = result.outcome
    return "fail" if outcome == "error" else outcome


def spans(result: TestResult) -> list[Span]:
    found = []
    for line in result.diagnostics:
        if match := DATA_RE.match(line):
            kind, name, start, end, label = match.groups()
            found.append(Span(kind, name, int(start, 16), int(end, 16), label.strip()))
    return found


def phase_of(name: str) -> str:
    return name.split(".", 1)[0] if "." in name else ""


def virtio_mem_spans(ktap: Ktap, phase: str) -> list[Span]:
    result = ktap.result(f"{phase}.iomem_virtio_mem")
    return [s for s in spans(result) if s.set == "virtio_mem"] if result else []


def uncovered(target: Span, cover: Sequence[Span]) -> int | None:
    """The first address of TARGET that no span of COVER contains, or None."""
    cursor = target.start
    for span in sorted(cover, key=lambda s: s.start):
        if span.start <= cursor <= span.end:
            cursor = span.end + 1
    return cursor if cursor <= target.end else None


def usage_verdict(result: TestResult, usages: Sequence[Usage]) -> tuple[str | None, list[str]]:
    """After the capture kernel read the dump's device ranges, the device's backing file must
    hold exactly what is plugged: more means unplugged memory was read (the virtio-mem vmcore
    callback did not hide it), less that plugged memory was not."""
    phase = phase_of(result.name)
    usage = next((u for u in usages if u.label == phase), None)
    if usage is None:
        return "fail", [f"the host has no backend-usage measurement for {phase}"]
    if usage.allocated > usage.plugged:
        extra = usage.allocated - usage.plugged
        return "fail", [f"reading the dump touched {extra / MIB:.1f} MiB of unplugged device "
                        f"memory ({usage.allocated / MIB:.1f} MiB allocated, "
                        f"{usage.plugged / MIB:.0f} MiB plugged)"]
    if usage.allocated < usage.plugged:
        return "fail", [f"only {usage.allocated / MIB:.1f} of {usage.plugged / MIB:.0f} MiB "
                        "plugged were read from the dump"]
    return "pass", []


def host_verdict(ktap: Ktap, result: TestResult,
                 usages: Sequence[Usage] = ()) -> tuple[str | None, list[str]]:
    """Recompute RESULT from the addresses the guest printed: (status or None, findings)."""
    phase, check = phase_of(result.name), result.name.split(".", 1)[-1]
    if verdict_of(result) == "skip":
        return None, []
    if check == READS_CHECK:
        return usage_verdict(result, usages)
    printed = {s.set for s in spans(result)}
    rule = next((r for r in RULES if r.check == check and r.set in printed), None)
    if rule is None:
        return None, []
    own = [s for s in spans(result) if s.set == rule.against]
    vmem = own or virtio_mem_spans(ktap, phase)
    mine = [s for s in spans(result) if s.set == rule.set]
    if not vmem:
        return None, []
    findings = []
    if rule.relation == "disjoint":
        findings = [f"{s} overlaps virtio-mem {v}" for s in mine for v in vmem if s.overlaps(v)]
    else:
        for v in vmem:
            hole = uncovered(v, mine)
            if hole is not None:
                findings.append(f"virtio-mem {v} is not dumped from {hole:#x} on")
    return ("fail" if findings else "pass"), findings


@dataclass(frozen=True)
class KernelResult:
    """One guest run interpreted: its TAP, and what went wrong outside the TAP."""

    label: str
    commit: str
    ktap: Ktap | None
    guest: GuestRun | None
    error: str | None
    scenario: str = "kexec"
    usages: tuple[Usage, ...] = ()

    def health(self) -> tuple[Status, str]:
        """Did the guest boot, run everything and power off cleanly?"""
        if self.error:
            return "fail", self.error
        guest, ktap = self.guest, self.ktap
        if guest is None or ktap is None:
            return "fail", "the guest did not run"
        if guest.problems:
            first = guest.problems[0]
            return "fail", f"{first.kind}: {first.line}"
        if guest.timed_out:
            return "fail", guest.timed_out
        if not ktap.version_seen:
            return "fail", "no TAP output from the guest (did /init run?)"
        if not ktap.complete:
            return "fail", (f"{len(ktap.results)} of {ktap.planned} results arrived "
                            "(the guest stopped early)")
        return "pass", (f"booted, {len(ktap.results)} results, powered off after "
                        f"{guest.duration_s:.1f} s")

    def results(self) -> dict[str, TestResult]:
        return {r.name: r for r in self.ktap.results} if self.ktap else {}


def compare(name: str, series: TestResult | None, base: TestResult | None,
            series_ktap: Ktap, usages: Sequence[Usage] = ()) -> Check:
    """One check: the series' result, rechecked by the host, next to the base result."""
    if series is None:
        return Check(name=name, status="fail", summary="no result from the series kernel")
    verdict, findings = host_verdict(series_ktap, series, usages)
    guest_says = verdict_of(series)
    status: Status = guest_says
    summary = _describe(series)
    if verdict is not None and verdict != guest_says:
        status = "fail"
        summary = (f"guest says {guest_says}, host recheck of the printed addresses says "
                   f"{verdict}: " + _first(findings or ["no overlap found"]))
    elif findings:
        summary = "failed: " + _first(findings)
    if base is not None:
        base_says = verdict_of(base)
        summary += f" [base: {base_says}]"
        if status == "fail" and base_says == "pass":
            summary = "REGRESSION: " + summary
        elif status == "pass" and base_says == "fail":
            summary += " (fixed by the series)"
        elif status == "skip" and base_says == "pass":
            status = "warn"
    data: dict[str, Any] = {"series": _result_data(series)}
    if base is not None:
        data["base"] = _result_data(base)
    return Check(name=name, status=status, summary=summary, data=data)


def _first(findings: list[str], shown: int = 3) -> str:
    more = f" (+{len(findings) - shown} more)" if len(findings) > shown else ""
    return "; ".join(findings[:shown]) + more


def _describe(result: TestResult) -> str:
    verdict = verdict_of(result)
    if verdict == "skip":
        return f"skipped: {result.reason}"
    shown = spans(result)
    text = [line for line in result.diagnostics if not DATA_RE.match(line)]
    if verdict == "fail":
        return "failed: " + (text[-1] if text else result.reason or "no detail")
    if not shown:
        return f"passed ({text[-1]})" if text else "passed"
    grouped: dict[str, list[str]] = {}
    for span in shown:
        grouped.setdefault(span.set, []).append(str(span))
    return "; ".join(f"{name}: {', '.join(items)}" for name, items in grouped.items())


def _result_data(result: TestResult) -> dict[str, Any]:
    return {
        "status": verdict_of(result),
        "reason": result.reason,
        "addresses": [{"kind": s.kind, "set": s.set, "start": f"{s.start:#x}",
                       "end": f"{s.end:#x}", "label": s.label} for s in spans(result)],
        "diagnostics": [line for line in result.diagnostics if not DATA_RE.match(line)][-20:],
    }


def side_by_side(series: KernelResult, base: KernelResult | None) -> list[dict[str, str]]:
    """The table reviewers read: every test with the series and the base status."""
    names = list(series.results())
    if base is not None:
        names += [n for n in base.results() if n not in names]
    rows = []
    for name in names:
        s = series.results().get(name)
        b = base.results().get(name) if base is not None else None
        rows.append({"test": name, "series": verdict_of(s) if s else "missing",
                     "base": (verdict_of(b) if b else "missing") if base is not None
                     else "not run"})
    return rows


def checks_for(series: KernelResult, base: KernelResult | None, arch: str = "") -> list[Check]:
    """Guest health of both runs, then one check per guest test, named ARCH.PHASE.CHECK."""
    checks = []
    for run in (series, base):
        if run is None:
            continue
        status, summary = run.health()
        if run.label == "base" and status == "fail":
            status = "warn"  # the base is the reference; its trouble is not the series'
            summary = f"base kernel: {summary} (comparison incomplete)"
        data: dict[str, Any] = {"commit": run.commit}
        if run.guest is not None:
            data.update({"duration_s": run.guest.duration_s, "events": list(run.guest.events),
                         "problems": [f"{p.kind}: {p.line}" for p in run.guest.problems]})
            if status != "pass":
                data["console_tail"] = run.guest.console_tail
        guest = run.guest
        name = f"{run.label} guest" + ("" if run.scenario == "kexec" else f" ({run.scenario})")
        checks.append(Check(name=name, status=status, summary=summary,
                            duration_s=guest.duration_s if guest else 0.0, data=data,
                            log=guest.console_log if guest else None,
                            reproducer=guest.command if guest else None))
    if series.ktap is not None:
        base_results = base.results() if base is not None else {}
        for result in series.ktap.results:
            name = f"{arch}.{result.name}" if arch else result.name
            check = compare(name, result, base_results.get(result.name), series.ktap,
                            series.usages)
            reason = known_limit(arch, result.name)
            checks.append(as_known(check, reason) if reason else check)
    return checks
