"""kvm.py: the host checks, the probe memo (<cache>/kvm-probe.json) and choose_accel, with
stand-in probes and a stand-in QEMU version (no QEMU runs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kseries.kernel import kvm
from kseries.kernel.arches import get_arch

X86 = get_arch("x86_64")
VERSION = "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u16)"


@pytest.fixture
def usable_kvm(tmp_path: Path) -> Path:
    device = tmp_path / "kvm"
    device.write_text("")
    return device


@pytest.fixture(autouse=True)
def fixed_qemu_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kvm, "qemu_version", lambda binary: VERSION)


def host(device: Path, machine: str = "x86_64", release: str = "6.1.0-28-amd64") -> kvm.Host:
    return kvm.Host(machine, release, device)


class Probe:
    """A probe that answers WORKS and counts how often it was asked."""

    def __init__(self, works: bool) -> None:
        self.works, self.calls = works, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.works


def test_host_checks(usable_kvm: Path, tmp_path: Path) -> None:
    assert kvm.host_problem(X86, host(usable_kvm)) is None
    assert kvm.host_problem(get_arch("s390"), host(usable_kvm)) == (
        "no KVM for s390 guests on a x86_64 host")
    assert kvm.host_problem(get_arch("arm64"), host(usable_kvm, "aarch64")) is None
    missing = tmp_path / "no-such-kvm"
    assert kvm.host_problem(X86, host(missing)) == f"{missing} is not usable"


def test_this_host_is_what_uname_says() -> None:
    this = kvm.Host.this()
    assert (this.machine, this.release) == (os.uname().machine, os.uname().release)
    assert this.kvm_device == Path("/dev/kvm")


def test_probe_runs_once_and_its_verdict_is_remembered(tmp_path: Path,
                                                       usable_kvm: Path) -> None:
    probe = Probe(True)
    assert kvm.choose_accel(tmp_path, X86, probe, host(usable_kvm)) == ("kvm", "KVM")
    assert kvm.choose_accel(tmp_path, X86, probe, host(usable_kvm)) == ("kvm", "KVM")
    assert probe.calls == 1
    memo = json.loads((tmp_path / "kvm-probe.json").read_text())
    assert memo == {f"qemu-system-x86_64 {VERSION} on 6.1.0-28-amd64": True}


def test_failed_probe_means_tcg_and_a_new_host_kernel_probes_again(tmp_path: Path,
                                                                  usable_kvm: Path) -> None:
    failing = Probe(False)
    accel, why = kvm.choose_accel(tmp_path, X86, failing, host(usable_kvm))
    assert accel == "tcg" and "did not boot" in why
    working = Probe(True)
    assert kvm.choose_accel(tmp_path, X86, working, host(usable_kvm))[0] == "tcg"
    assert working.calls == 0
    upgraded = host(usable_kvm, release="6.1.0-29-amd64")
    assert kvm.choose_accel(tmp_path, X86, working, upgraded)[0] == "kvm"
    assert working.calls == 1
    assert len(kvm.read_memo(tmp_path)) == 2


def test_host_checks_come_before_any_probe(tmp_path: Path, usable_kvm: Path) -> None:
    probe = Probe(True)
    assert kvm.choose_accel(tmp_path, get_arch("arm64"), probe, host(usable_kvm)) == (
        "tcg", "TCG: no KVM for arm64 guests on a x86_64 host")
    accel, why = kvm.choose_accel(tmp_path, X86, probe, host(tmp_path / "none"))
    assert accel == "tcg" and why.endswith("is not usable")
    assert probe.calls == 0 and not (tmp_path / "kvm-probe.json").exists()


def test_a_hung_kvm_guest_is_remembered_as_a_failure(tmp_path: Path, usable_kvm: Path) -> None:
    probe = Probe(True)
    kvm.choose_accel(tmp_path, X86, probe, host(usable_kvm))
    kvm.remember_failure(tmp_path, X86, host(usable_kvm))
    assert kvm.choose_accel(tmp_path, X86, probe, host(usable_kvm))[0] == "tcg"
    assert probe.calls == 1


def test_a_damaged_memo_remembers_nothing(tmp_path: Path) -> None:
    memo = kvm.memo_path(tmp_path)
    assert kvm.read_memo(tmp_path) == {}
    memo.write_text("{not json")
    assert kvm.read_memo(tmp_path) == {}
    memo.write_text('["a list"]')
    assert kvm.read_memo(tmp_path) == {}
    memo.write_text('{"k": true, "odd": "yes"}')
    assert kvm.read_memo(tmp_path) == {"k": True}
    kvm.remember(tmp_path, "other", False)
    assert kvm.read_memo(tmp_path) == {"k": True, "other": False}
    assert [p.name for p in tmp_path.iterdir()] == ["kvm-probe.json"]
