"""kseries vmtest on the real 6.12 tree: real kernel builds (small config, ccache), real QEMU
(TCG), real kexec-tools and makedumpfile in the guest: every scenario (phases, two kexec
reboots, three kinds of dump, the controls) with the series. Slow on a cold cache: one
small kernel build for the series and a short one per mutant and per commit (they share the
series' headers). The base side by side is verify's (`kseries vmtest` without --no-base): the
base's headers differ from the series', so its guest kernel is a second full compile, and its
rendering is a unit test (tests/unit/test_vmtest.py).

The negative controls are mutant kernels: the series plus one patch of
kernel-overlay/vmtest/mutants/ each, which must make the checks it names fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kseries.kernel.qemu import Guest, Timeouts, machine, run_guest
from kseries.kernel.tree import Tree
from kseries.series.config import load_series
from kseries.stages.vmtest import initramfs as ir
from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.realtree



@dataclass(frozen=True)
class VmRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any]

    @property
    def stage(self) -> dict[str, Any]:
        stage: dict[str, Any] = next(s for s in self.report["stages"] if s["name"] == "vmtest")
        return stage

    def check(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = next(c for c in self.stage["checks"] if c["name"] == name)
        return found


# The mutants make check runs (the whole table is verify's): one per kind of check they kill.
CHECKED_MUTANTS = ("memmap-entry-for-driver-managed", "vmcore-callback-disabled",
                   "resource-not-named-system-ram")


def series_mbox() -> Path:
    """The current revision once patches/v2.mbx exists, the small fixture series until then."""
    config = load_series()
    current = config.revision().mbox
    return current if current.is_file() else FIXTURES / "small-series.mbx"


def vmtest(out: Path, *args: str | Path) -> VmRun:
    """`kseries vmtest` as a user runs it, through `python -m kseries`."""
    proc = subprocess.run([sys.executable, "-m", "kseries", "vmtest", "--out", str(out),
                           *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return VmRun(proc.returncode, proc.stdout, proc.stderr, report)


@pytest.fixture(scope="module")
def series_run(real_tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> VmRun:
    """The series (no base: see the module's docstring) and the mutants make check runs
    (CHECKED_MUTANTS; verify runs them all)."""
    mutants = [arg for name in CHECKED_MUTANTS for arg in ("--mutant", name)]
    return vmtest(tmp_path_factory.mktemp("vm-series"), "--mbox", series_mbox(), "--no-base",
                  *mutants)


PHASE_CHECKS = ("iomem_virtio_mem", "memmap_excludes_virtio_mem", "kexec_load_segments",
                "kexec_load_memmap", "kexec_file_segments", "kdump_dumps_virtio_mem")
REBOOT_CHECKS = ("memmap_excludes_virtio_mem", "iomem_no_plain_ram_in_device",
                 "driver_replugged", "dmesg_clean")
CAPTURE_CHECKS = ("vmcore_covers_virtio_mem", "vmcore_reads_plugged", "makedumpfile_ok",
                  "dmesg_clean")
# what every scenario's kernels check, by phase (the names are <arch>.<phase>.<check>)
EXPECTED = {
    **{phase: PHASE_CHECKS for phase in ("boot", "grow", "shrink")},
    "kexec_load_reboot": REBOOT_CHECKS, "kexec_file_reboot": REBOOT_CHECKS,
    "kdump_load": ("iomem_virtio_mem", "kdump_dumps_virtio_mem", *CAPTURE_CHECKS),
    "kdump_file": ("iomem_virtio_mem", "capture_loaded", *CAPTURE_CHECKS),
    "crash_hotplug": ("capture_loaded", "iomem_virtio_mem", *CAPTURE_CHECKS),
    "control": ("probe_memmap_entry", "probe_kexec_load_memmap", "dmesg_clean"),
}
# the tree's kexec kselftests: test_kexec_file_load.sh skips without pesign/getfattr
SELFTESTS = {
    "control.kselftest_kexec_load": ("pass",),
    "control.kselftest_kexec_file_load": ("pass", "skip"),
}


def test_series_passes_every_guest_check(series_run: VmRun) -> None:
    assert series_run.returncode == 0, series_run.stdout + series_run.stderr
    assert series_run.stage["status"] == "pass", series_run.stage["summary"]
    statuses = {c["name"]: c["status"] for c in series_run.stage["checks"]}
    for suffix in ("", " (kdump_file)", " (crash_hotplug)", " (control)"):
        assert statuses[f"series guest{suffix}"] == "pass", suffix
    assert not [name for name in statuses if name.startswith("base guest")]
    for phase, checks in EXPECTED.items():
        for check in checks:
            assert statuses[f"x86_64.{phase}.{check}"] == "pass", (phase, check)
    assert statuses["x86_64.boot.mem_on_off_test"] in ("pass", "skip")
    assert statuses["x86_64.shrink.dmesg_clean"] == "pass"
    for name, allowed in SELFTESTS.items():
        assert statuses[f"x86_64.{name}"] in allowed, name
    guest_checks = [n for n in statuses if n.startswith("x86_64.") and ".mutant" not in n]
    assert len(guest_checks) == sum(map(len, EXPECTED.values())) + 2 + len(SELFTESTS)


def test_kexec_reboots_and_dumps_report_what_they_saw(series_run: VmRun) -> None:
    """The closing note's figures: which kernels each scenario went through, what the dump
    held and read, what makedumpfile wrote."""
    scenarios = series_run.stage["data"]["scenarios"]
    assert [k.split()[-2:] for k in scenarios["kexec"]["kernels"]] == [
        ["mode=test", "phase="], ["mode=reboot", "phase=kexec_load_reboot"],
        ["mode=reboot", "phase=kexec_file_reboot"], ["mode=capture", "phase=kdump_load"]]
    usage = series_run.stage["data"]["device_usage"]
    for phase in ("kexec", "kdump_file", "crash_hotplug"):
        [measured] = usage[phase]
        assert measured["allocated"] == measured["plugged"], (phase, measured)
    # the crash came after the resize to 200 MiB: one block is partly plugged
    assert usage["kdump_file"][0]["plugged"] == 200 << 20
    assert usage["crash_hotplug"][0]["plugged"] == 328 << 20
    reads = series_run.check("x86_64.kdump_file.vmcore_reads_plugged")
    assert "from PT_LOAD data" in "\n".join(reads["data"]["series"]["diagnostics"])
    dump = series_run.check("x86_64.kdump_file.makedumpfile_ok")["summary"]
    assert "makedumpfile -c -d 31 wrote" in dump


def test_report_shows_virtio_mem_ranges_and_every_segment(series_run: VmRun) -> None:
    addresses = series_run.stage["data"]["addresses"]
    assert addresses["boot.iomem_virtio_mem"]["range virtio_mem"] == [
        "0x100000000-0x10fffffff System RAM (virtio_mem)"]
    assert addresses["grow.iomem_virtio_mem"]["range virtio_mem"] == [
        "0x100000000-0x11fffffff System RAM (virtio_mem)"]
    shrunk = addresses["shrink.iomem_virtio_mem"]["range virtio_mem"]
    assert len(shrunk) == 1 and shrunk[0].endswith("System RAM (virtio_mem)")
    for phase in ("boot", "grow", "shrink"):
        load = addresses[f"{phase}.kexec_load_segments"]["segment kexec_load"]
        assert load and all(re.match(r"0x[0-9a-f]+-0x[0-9a-f]+ segment\[\d+\]$", s) for s in load)
        assert addresses[f"{phase}.kexec_file_segments"]["segment kexec_file"]
        assert addresses[f"{phase}.kdump_dumps_virtio_mem"]["segment kdump"]
    summary = series_run.check("x86_64.boot.kexec_file_segments")["summary"]
    assert "kexec_file: 0x" in summary and "[base:" not in summary


def test_arches_without_virtio_mem_are_reasoned_and_no_base_means_none(
        series_run: VmRun) -> None:
    assert list(series_run.stage["data"]["kernels"]) == ["series"]
    rows = series_run.stage["data"]["side_by_side"]
    assert rows and {row["base"] for row in rows} == {"not run"}
    for arch in ("powerpc", "s390"):
        reason = series_run.stage["data"]["other_arches"][f"{arch} guest"]
        assert "no virtio-mem in Linux 6.12" in reason and "KUnit" in reason
        assert series_run.check(f"{arch} guest")["status"] == "skip"
    assert series_run.stage["data"]["accel"] in ("tcg", "kvm")


def test_mutants_kill_the_checks_they_name(series_run: VmRun) -> None:
    """Each mutant kernel (the series plus one patch from kernel-overlay/vmtest/mutants/) makes
    the checks it names fail; the table says per check which mutant killed it."""
    for name in CHECKED_MUTANTS:
        check = series_run.check(f"x86_64.mutant.{name}")
        assert check["status"] == "pass", check["summary"]
    table = series_run.check("x86_64.mutant table")
    assert table["status"] == "skip" and "only the mutants asked for ran" in table["summary"]
    killers = table["data"]["table"]
    assert killers["kexec_load_reboot.memmap_excludes_virtio_mem"] == [
        "memmap-entry-for-driver-managed"]
    assert killers["kdump_file.vmcore_reads_plugged"] == ["vmcore-callback-disabled"]
    assert killers["crash_hotplug.vmcore_reads_plugged"] == ["vmcore-callback-disabled"]
    # kexec -p's dump is what kexec-tools reads from /proc/iomem's names; kexec -s -p's is not
    renamed = series_run.check("x86_64.mutant.resource-not-named-system-ram")["data"]
    for phase in ("boot", "grow", "shrink", "kdump_load"):
        assert killers[f"{phase}.kdump_dumps_virtio_mem"] == ["resource-not-named-system-ram"]
        assert f"{phase}.kdump_dumps_virtio_mem" in renamed["failed_checks"]
    assert "boot.kexec_file_segments" not in renamed["failed_checks"]
    memmap = series_run.check("x86_64.mutant.memmap-entry-for-driver-managed")["data"]
    assert "boot.kexec_file_segments" not in memmap["failed_checks"]  # decided by the flag


def small_guest(series_run: VmRun, tmp_path: Path, init: str) -> Guest:
    """The series kernel with a one-file initramfs whose /init is INIT (busybox sh)."""
    busybox = ir.busybox(Path(shutil.which("busybox") or "/bin/busybox"))
    initrd = ir.write_archive([*ir.base_layout(), *busybox,
                               ir.regular("init", init.encode(), executable=True)],
                              tmp_path / "initrd.cpio")
    image = Path(series_run.stage["data"]["kernels"]["series"]["image"])
    return Guest(machine("x86_64"), image, initrd, "console=ttyS0 panic=-1", virtio_mem=None)


def test_kernel_panic_is_detected_and_named(series_run: VmRun, tmp_path: Path) -> None:
    guest = small_guest(series_run, tmp_path, "#!/bin/sh\necho bye\nexit 0\n")
    run = run_guest(guest, tmp_path / "logs", Timeouts(total_s=120, silent_s=60))
    assert run.problems and run.problems[0].kind == "kernel panic"
    assert "Attempted to kill init" in run.problems[0].line
    assert "Kernel panic" in run.console_tail


def test_hung_guest_is_stopped_by_the_silence_timeout(series_run: VmRun, tmp_path: Path) -> None:
    guest = small_guest(series_run, tmp_path, "#!/bin/sh\nmount -t devtmpfs dev /dev\n"
                                              "echo waiting > /dev/ttyS1\nsleep 600\n")
    run = run_guest(guest, tmp_path / "logs", Timeouts(total_s=120, silent_s=8))
    assert run.timed_out is not None and run.timed_out.startswith(
        "guest hung: no output for 8 s (phase boot); console tail: ")
    assert run.exit_code is None
    assert "waiting" in run.results


def test_a_phase_that_never_ends_is_stopped_with_the_console_tail(series_run: VmRun,
                                                                  tmp_path: Path) -> None:
    """Output keeps coming (the silence timeout never fires), but one phase runs on."""
    guest = small_guest(series_run, tmp_path, "#!/bin/sh\nmount -t devtmpfs dev /dev\n"
                        "echo 'ok 1 boot.first' > /dev/ttyS1\n"
                        "echo 'ok 2 grow.second' > /dev/ttyS1\n"
                        "while true; do echo still-growing > /dev/console; sleep 1; done\n")
    run = run_guest(guest, tmp_path / "logs", Timeouts(total_s=120, silent_s=60, phase_s=6))
    assert run.timed_out is not None, run.console_tail
    reason, _, tail = run.timed_out.partition("; console tail: ")
    assert reason == "guest hung in phase grow: over 6 s in it"
    assert tail.endswith("still-growing")


@pytest.fixture(scope="module")
def arm64_run(real_tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> VmRun:
    """The series on an arm64 guest (-M virt, Debian's arm64 userland), no base."""
    return vmtest(tmp_path_factory.mktemp("vm-arm64"), "--mbox", series_mbox(), "--arch",
                  "arm64", "--no-base")


def test_arm64_guest_reboots_and_dumps_with_the_device_tree(arm64_run: VmRun) -> None:
    """arm64: both kexec reboots see no RAM of the device in their device tree or memblock,
    kexec -s -p dumps the device's plugged memory and nothing else; what user space or 6.12
    arm64 lack is a warning or a skip that says so, never a pass."""
    statuses = {c["name"]: c["status"] for c in arm64_run.stage["checks"]}
    assert arm64_run.returncode == 250, arm64_run.stdout + arm64_run.stderr  # warnings only
    for phase in ("kexec_load_reboot", "kexec_file_reboot"):
        for check in REBOOT_CHECKS:
            assert statuses[f"arm64.{phase}.{check}"] == "pass", (phase, check)
    for check in ("iomem_virtio_mem", "capture_loaded", *CAPTURE_CHECKS):
        assert statuses[f"arm64.kdump_file.{check}"] == "pass", check
    for phase in ("boot", "grow", "shrink"):
        assert statuses[f"arm64.{phase}.memmap_excludes_virtio_mem"] == "pass"  # memblock
        assert statuses[f"arm64.{phase}.kexec_file_segments"] == "pass"
        assert statuses[f"arm64.{phase}.kexec_load_memmap"] == "skip"  # no E820 map
    # kexec-tools' arm64 kdump (kexec -p) matches "System RAM" exactly: a known warning
    known = arm64_run.check("arm64.kdump_load.vmcore_covers_virtio_mem")
    assert known["status"] == "warn" and "crashdump-arm64.c" in known["summary"]
    assert statuses["arm64.crash_hotplug"] == "skip"
    assert not [name for name, status in statuses.items() if status == "fail"]
    usage = arm64_run.stage["data"]["device_usage"]["kdump_file"][0]
    assert usage["allocated"] == usage["plugged"] == 200 << 20


def test_every_commit_of_the_series_boots(real_tree: Tree,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """A runtime bisect: each commit below the head boots and passes the control scenario
    (the kexec kselftests, the probe controls, a clean log); verify runs every scenario.
    Patch 1 changes arch/powerpc/ only: its x86_64 kernel is the base's, not booted."""
    run = vmtest(tmp_path_factory.mktemp("vm-commits"), "--mbox", series_mbox(), "--no-base",
                 "--every-commit", "--scenario", "control")
    assert run.returncode == 0, run.stdout + run.stderr
    commits = [c for c in run.stage["checks"] if c["rule"] == "runtime-bisect"]
    assert [c["step"] for c in commits] == ["patch 1", "patch 2", "patch 3"]
    assert commits[0]["status"] == "skip", commits[0]["summary"]
    assert "changes only arch/powerpc/: nothing of it is built for x86_64" in commits[0]["summary"]
    for check in commits[1:]:
        assert check["status"] == "pass", check["summary"]
        assert "every guest check passes (control)" in check["summary"]
