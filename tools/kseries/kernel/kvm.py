"""KVM or TCG for a QEMU guest: the host checks and one remembered probe boot.

A guest runs under KVM only where the host is of the guest's arch, /dev/kvm is usable and a
short probe guest booted there. Some hosts pass the first two and still hang every KVM guest
(nested virtualisation without the features QEMU needs), so the probe decides; it costs up to
half a minute, so its verdict is kept in <cache>/kvm-probe.json, keyed by QEMU binary, its
version and the host kernel release: kunit and vmtest probe once between them, and again
after a QEMU or host kernel upgrade. Each stage boots its own kind of probe guest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kseries.kernel.arches import Arch
from kseries.kernel.qemu import qemu_version

MEMO_NAME = "kvm-probe.json"
KVM_DEVICE = Path("/dev/kvm")

Accel = Literal["kvm", "tcg"]
Probe = Callable[[], bool]


@dataclass(frozen=True)
class Host:
    """What the KVM decision needs to know about the machine we run on."""

    machine: str  # uname -m
    release: str  # uname -r: a new host kernel may fix (or break) KVM
    kvm_device: Path = KVM_DEVICE

    @staticmethod
    def this() -> Host:
        uname = os.uname()
        return Host(uname.machine, uname.release)


def host_problem(arch: Arch, host: Host) -> str | None:
    """Why HOST cannot run ARCH guests under KVM at all, or None."""
    if arch.host_machine != host.machine:
        return f"no KVM for {arch.name} guests on a {host.machine} host"
    if not os.access(host.kvm_device, os.R_OK | os.W_OK):
        return f"{host.kvm_device} is not usable"
    return None


def memo_path(cache: Path) -> Path:
    return cache / MEMO_NAME


def probe_key(qemu: str, version: str, release: str) -> str:
    return f"{qemu} {version} on {release}"


def key_for(arch: Arch, host: Host) -> str:
    """The memo key of ARCH's QEMU on HOST (asks QEMU for its version)."""
    return probe_key(arch.qemu, qemu_version(arch.qemu), host.release)


def read_memo(cache: Path) -> dict[str, bool]:
    """Every remembered verdict; a missing or damaged file remembers nothing."""
    try:
        data = json.loads(memo_path(cache).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(key): value for key, value in data.items() if isinstance(value, bool)}


def remember(cache: Path, key: str, works: bool) -> None:
    """Keep the verdict for KEY (written whole, then renamed: never a half-written file)."""
    known = read_memo(cache)
    known[key] = works
    path = memo_path(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    partial.replace(path)


def remember_failure(cache: Path, arch: Arch, host: Host | None = None) -> None:
    """A KVM guest of ARCH hung after the probe said yes: use TCG from now on."""
    remember(cache, key_for(arch, host or Host.this()), False)


def choose_accel(cache: Path, arch: Arch, probe: Probe,
                 host: Host | None = None) -> tuple[Accel, str]:
    """("kvm" | "tcg", why): KVM where the host checks pass and PROBE (run once per memo key,
    True when its guest booted) says so."""
    host = host or Host.this()
    problem = host_problem(arch, host)
    if problem is not None:
        return "tcg", f"TCG: {problem}"
    key = key_for(arch, host)
    works = read_memo(cache).get(key)
    if works is None:
        works = probe()
        remember(cache, key, works)
    if works:
        return "kvm", "KVM"
    return "tcg", "TCG: a KVM probe guest did not boot on this host"
