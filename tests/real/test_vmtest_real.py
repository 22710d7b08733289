"""kseries vmtest on the real 6.12 tree: real kernel builds (small config, ccache), real QEMU
(TCG), real kexec-tools in the guest. Slow on a cold cache (two small kernel builds), about a
minute per guest run when warm.

The negative control: a mutant series made here (the series plus one patch that creates the
firmware memmap entry for driver-managed memory again) must make the memmap check fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kseries.kernel.qemu import Guest, Timeouts, machine, run_guest
from kseries.kernel.tree import Tree, cache_dir
from kseries.series.apply import apply_series
from kseries.series.config import load_series
from kseries.stages.vmtest import initramfs as ir
from tests.conftest import FIXTURES, GIT_ENV, ROOT, git

pytestmark = pytest.mark.realtree

MEMMAP_ADD = re.compile(r"\n\tif \([^\n]*\)\n(\t\tfirmware_map_add_hotplug\(start, start \+ size, "
                        r"\"System RAM\"\);)")


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
    """The series and its base, side by side (builds both kernels on a cold cache)."""
    return vmtest(tmp_path_factory.mktemp("vm-series"), "--mbox", series_mbox())


def test_series_passes_every_guest_check(series_run: VmRun) -> None:
    assert series_run.returncode == 0, series_run.stdout + series_run.stderr
    assert series_run.stage["status"] == "pass", series_run.stage["summary"]
    statuses = {c["name"]: c["status"] for c in series_run.stage["checks"]}
    assert statuses["series guest"] == "pass" and statuses["base guest"] == "pass"
    for phase in ("boot", "grow", "shrink"):
        for check in ("iomem_virtio_mem", "memmap_excludes_virtio_mem", "kexec_load_segments",
                      "kexec_load_memmap", "kexec_file_segments", "kexec_file_memmap",
                      "kdump_dumps_virtio_mem"):
            assert statuses[f"{phase}.{check}"] == "pass", (phase, check)
    assert statuses["boot.mem_on_off_test"] in ("pass", "skip")
    assert statuses["control.probe_memmap_entry"] == "pass"
    assert statuses["control.probe_kexec_load_memmap"] == "pass"
    assert statuses["dmesg_clean"] == "pass"


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
    summary = series_run.check("boot.kexec_file_segments")["summary"]
    assert "kexec_file: 0x" in summary and "[base: pass]" in summary


def test_base_runs_side_by_side_and_arm64_is_reasoned(series_run: VmRun) -> None:
    rows = series_run.stage["data"]["side_by_side"]
    assert {"test": "boot.memmap_excludes_virtio_mem", "series": "pass", "base": "pass"} in rows
    kernels = series_run.stage["data"]["kernels"]
    assert kernels["base"]["commit"] != kernels["series"]["commit"]
    arm64 = series_run.stage["data"]["other_arches"]["arm64 guest"]
    assert "virtio-mem" in arm64 and ("arm64" in arm64)
    assert series_run.stage["data"]["accel"] in ("tcg", "kvm")


@pytest.fixture(scope="module")
def mutant_mbox(real_tree: Tree, series_run: VmRun,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The series plus a patch that creates a firmware memmap entry for every hot-added range,
    driver managed or not (the bug the series exists to prevent)."""
    applied = apply_series(real_tree, series_mbox(), cache_dir(), "vmtest-mutant", "mutant-src")
    hotplug = applied.worktree / "mm" / "memory_hotplug.c"
    text = hotplug.read_text()
    mutated, count = MEMMAP_ADD.subn(r"\n\1", text)
    assert count == 1, "the firmware_map_add_hotplug() call site moved; update the mutant"
    hotplug.write_text(mutated.replace("\n\t\tfirmware_map_add_hotplug(start",
                                       "\n\tfirmware_map_add_hotplug(start"))
    env_args = [arg for key, value in (("user.name", GIT_ENV["GIT_AUTHOR_NAME"]),
                                       ("user.email", GIT_ENV["GIT_AUTHOR_EMAIL"]))
                for arg in ("-c", f"{key}={value}")]
    git(applied.worktree, *env_args, "commit", "-q", "-a", "-m",
        "mm/memory_hotplug: mutant: firmware memmap entry for driver-managed memory too")
    mbox = tmp_path_factory.mktemp("mutant") / "mutant.mbx"
    mbox.write_text(git(applied.worktree, "format-patch", "--stdout", "--thread",
                        f"{applied.base}..HEAD") + "\n")
    yield mbox


def test_mutant_series_fails_the_memmap_check(mutant_mbox: Path,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    mutant = vmtest(tmp_path_factory.mktemp("vm-mutant"), "--mbox", mutant_mbox, "--no-base")
    assert mutant.returncode == 1, mutant.stdout + mutant.stderr
    memmap = mutant.check("boot.memmap_excludes_virtio_mem")
    assert memmap["status"] == "fail"
    assert "overlaps 0x100000000-0x10fffffff (System RAM (virtio_mem))" in "\n".join(
        memmap["data"]["series"]["diagnostics"])
    # kexec-tools builds the kexec_load map from /sys/firmware/memmap: it follows the bug
    assert mutant.check("boot.kexec_load_memmap")["status"] == "fail"
    assert mutant.check("series guest")["status"] == "pass"
    # kexec_file_load decides by the resource flag, which the mutant left alone
    assert mutant.check("boot.kexec_file_segments")["status"] == "pass"


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
    assert run.timed_out == "guest hung: no output for 8 s"
    assert run.exit_code is None
    assert "waiting" in run.results
